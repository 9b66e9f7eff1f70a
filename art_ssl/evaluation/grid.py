"""
The audit grid: encoders x downstream tasks x defences x attacks x budgets -> one pandas row per cell (BA, RA, ASR,
fooling rate, times, seed, versions), appended to a results file as each cell finishes.

Work is grouped so nothing is computed twice: each universal perturbation once per (encoder, attack, eps, seed),
from the attacker's unlabelled images; each downstream model once per (encoder, task, defence, seed) job, which then
faces every attack of its cells. A killed run restarted on the same file skips the finished cells. Jobs run in this
process (``backend="local"``) or as Ray tasks (``backend="ray"``, ``pip install art_ssl[ray]``).

    >>> from art_ssl.evaluation import GridConfig, run_grid
    >>> frame = run_grid(GridConfig(encoders=("simclr_r18",), attacks=("ssp", "pgd"), defences=("none",)),
    ...                  "audit/results.csv")
"""
from __future__ import annotations

import copy
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from art_ssl.evaluation.registry import (
    DEFENCES,
    AttackSettings,
    attack_kind,
    make_defence_trainer,
    make_universal_attack,
    whitebox_adversarial,
)
from art_ssl.evaluation.store import ResultStore

logger = logging.getLogger(__name__)

KEY = ("encoder", "task", "defence", "attack", "eps_255", "seed")
# Defences that repair an already trained downstream model (Sha et al. fine-tune the backdoored model): their job
# first trains the head on the frozen encoder, as the "none" model, then applies them. The others train from the
# pre-trained encoder and a fresh head.
POST_HOC_DEFENCES = ("super_finetune",)
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class GridConfig:
    """
    What to audit. Names: encoders as zoo names or files (:func:`~art_ssl.evaluation.sources.load_encoder_spec`),
    tasks as data specs (:func:`~art_ssl.evaluation.sources.load_data_spec`), attacks and defences from
    :mod:`art_ssl.evaluation.registry`.

    :param encoders: Encoders to audit. :param tasks: Downstream tasks.
    :param attacks: Universal (crafted on the encoder), white-box (on the downstream model) and ``"badencoder"``
                    (the recorded trigger of a backdoored zoo encoder; ASR).
    :param defences: How the downstream model is trained (``"none"``: a head on the frozen encoder).
    :param eps: Budgets in 1/255 units (ignored by ``"badencoder"``).
    :param seeds: One run of every cell per seed.
    :param size: Image side. :param n_train: Downstream training images (``None``: all). :param n_test: Test images.
    :param epochs: Defence epochs. :param batch_size: Batch size. :param pgd_steps: PGD steps inside the defences.
    :param whitebox_n: Test images under white-box attacks (they cost a forward/backward per step and image).
    :param surrogate_n: The attacker's unlabelled images (the first task's training images, labels dropped).
    :param attack_settings: Settings of the universal attacks. :param device_type: ``"cpu"`` or ``"gpu"``.
    :param verbose: Progress bars inside trainers.
    :param amp: Mixed precision of defences and universal attacks (``True``, ``False``, ``"auto"``; see
                :mod:`art_ssl.core.amp`).
    """

    encoders: tuple[str, ...]
    tasks: tuple[str, ...] = ("fashion-mnist-subset",)
    attacks: tuple[str, ...] = ("ssp", "pap_ugs", "pgd")
    defences: tuple[str, ...] = ("none",)
    eps: tuple[float, ...] = (10.0,)
    seeds: tuple[int, ...] = (0,)
    size: int = 64
    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 1
    batch_size: int = 256
    pgd_steps: int = 5
    whitebox_n: int = 200
    surrogate_n: int = 5000
    attack_settings: AttackSettings = field(default_factory=AttackSettings)
    device_type: str = "cpu"
    verbose: bool = False
    amp: bool | str = "auto"

    def __post_init__(self) -> None:
        for name in ("encoders", "tasks", "attacks", "defences", "eps", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                raise TypeError(f"`{name}` must be a tuple of values, got {value!r}.")
            object.__setattr__(self, name, tuple(value))
        from art_ssl.evaluation.sources import check_data_spec, check_encoder_spec

        for encoder in self.encoders:
            check_encoder_spec(encoder)
        for task in self.tasks:
            check_data_spec(task)
        for attack in self.attacks:
            attack_kind(attack)
        unknown = [d for d in self.defences if d not in DEFENCES]
        if unknown:
            raise ValueError(f"Unknown defence(s) {unknown}; choose from {DEFENCES}.")
        if any(isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e <= 255 for e in self.eps):
            raise ValueError(f"`eps` must be budgets in (0, 255] (1/255 units), got {self.eps!r}.")
        if self.device_type not in ("cpu", "gpu"):
            raise ValueError(f"`device_type` must be 'cpu' or 'gpu', got {self.device_type!r}.")
        from art_ssl.core.amp import check_amp

        check_amp("amp", self.amp)

    def cells(self) -> list[dict]:
        """Every cell of the grid, as key dicts. ``"badencoder"`` has one cell (``eps_255`` 0) per backdoored zoo
        encoder and none for the others (there is no recorded trigger to test them with)."""
        from art_ssl.zoo import list_encoders

        backdoored = set(list_encoders(backdoored=True))
        out = []
        for encoder in self.encoders:
            for task in self.tasks:
                for defence in self.defences:
                    for seed in self.seeds:
                        for attack in self.attacks:
                            if attack_kind(attack) == "backdoor" and encoder not in backdoored:
                                continue
                            budgets = (0.0,) if attack_kind(attack) == "backdoor" else self.eps
                            out += [{"encoder": encoder, "task": task, "defence": defence, "attack": attack,
                                     "eps_255": float(e), "seed": seed} for e in budgets]  # fmt: skip
        return out


def versions() -> dict[str, str]:
    import art

    import art_ssl

    return {"art_ssl_version": art_ssl.__version__, "art_version": art.__version__, "torch_version": torch.__version__}


# ----------------------------------------------------------------------------------------------------------- work
@functools.lru_cache(maxsize=4)
def _encoder(spec: str, size: int, device_type: str):
    """Encoders are loaded once per process (jobs deep-copy the model before training it)."""
    from art_ssl.evaluation.sources import load_encoder_spec

    return load_encoder_spec(spec, size, device_type)


@functools.lru_cache(maxsize=4)
def _task(spec: str, size: int, channels: int, n_train: int | None, n_test: int | None, seed: int):
    """Datasets are loaded once per process (read only afterwards)."""
    from art_ssl.evaluation.sources import load_data_spec

    return load_data_spec(spec, size, channels, n_train, n_test, seed)


def learn_perturbation(config: GridConfig, encoder: str, attack: str, eps_255: float, seed: int) -> dict:
    """One universal perturbation on the public encoder from the attacker's unlabelled images."""
    from art_ssl.evaluation.surrogate import surrogate_classifier

    public = _encoder(encoder, config.size, config.device_type)
    first = _task(config.tasks[0], config.size, public.input_shape[0], None, None, seed)
    n = min(config.surrogate_n, len(first.x_train))
    x_sur = first.x_train[np.random.default_rng(seed + 1).choice(len(first.x_train), n, replace=False)]
    surrogate = surrogate_classifier(public, x_sur, seed=seed) if attack in ("uapepgd", "art_uap") else None
    torch.manual_seed(seed)
    np.random.seed(seed)  # ART's UniversalPerturbation shuffles with numpy
    settings = replace(config.attack_settings, seed=seed)
    att = make_universal_attack(attack, public, eps_255 / 255, surrogate, settings)
    if "amp" in getattr(att, "attack_params", ()):
        att.set_params(amp=config.amp)
    start = time.perf_counter()
    att.generate(x_sur)
    seconds = time.perf_counter() - start
    fooling = getattr(att, "fooling_rate", None)
    return {"noise": np.asarray(att.noise, np.float32), "attack_seconds": seconds,
            "fooling_rate": float("nan") if fooling is None else float(fooling)}  # fmt: skip


def run_job(config: GridConfig, job: dict, cells: list[dict], perturbations: dict) -> list[dict]:
    """Train one downstream model (``job``: encoder, task, defence, seed) and evaluate it under ``cells``."""
    from art_ssl.estimators import encoder_classifier
    from art_ssl.metrics import attack_success_rate, benign_accuracy, robust_accuracy
    from art_ssl.models import MLPHead
    from art_ssl.zoo import backdoor_targets, encoder_info, list_encoders

    seed = job["seed"]
    public = _encoder(job["encoder"], config.size, config.device_type)
    task = _task(job["task"], config.size, public.input_shape[0], config.n_train, config.n_test, seed)
    torch.manual_seed(seed)
    classifier = encoder_classifier(copy.deepcopy(public.model), task.nb_classes,
                                    head=MLPHead(public.embedding_dim, task.nb_classes, dropout=0.2),
                                    freeze_encoder=False, input_shape=public.input_shape,
                                    device_type=config.device_type)  # fmt: skip
    start = time.perf_counter()
    head_epochs = max(config.epochs, 10)  # a head on the frozen encoder is cheap (embedded once)
    if job["defence"] in POST_HOC_DEFENCES:  # they repair a trained downstream model: train its head first
        make_defence_trainer("none", classifier, head_epochs, batch_size=config.batch_size, seed=seed,
                             verbose=config.verbose, amp=config.amp).fit(task.x_train, task.y_train)  # fmt: skip
    epochs = head_epochs if job["defence"] == "none" else config.epochs
    make_defence_trainer(job["defence"], classifier, epochs, batch_size=config.batch_size,
                         pgd_steps=config.pgd_steps, seed=seed, verbose=config.verbose,
                         amp=config.amp).fit(task.x_train, task.y_train)
    train_seconds = time.perf_counter() - start
    ba = benign_accuracy(classifier.predict(task.x_test, batch_size=512).argmax(1), task.y_test)
    rows = []
    for cell in cells:
        attack, eps = cell["attack"], cell["eps_255"] / 255
        row = {**cell, "BA": ba, "RA": np.nan, "ASR": np.nan, "fooling_rate": np.nan, "attack_seconds": np.nan,
               "train_seconds": round(train_seconds, 2), "n_train": len(task.x_train), "n_test": len(task.x_test),
               "status": "ok", **versions()}  # fmt: skip
        kind = attack_kind(attack)
        try:
            if kind == "universal":
                learnt = perturbations[(cell["encoder"], attack, cell["eps_255"], cell["seed"])]
                x_adv = np.clip(task.x_test + learnt["noise"], 0, 1).astype(np.float32)
                row["RA"] = robust_accuracy(classifier.predict(x_adv, batch_size=512).argmax(1), task.y_test)
                row["fooling_rate"], row["attack_seconds"] = learnt["fooling_rate"], learnt["attack_seconds"]
            elif kind == "whitebox":
                n = min(config.whitebox_n, len(task.x_test))
                t0 = time.perf_counter()
                x_adv = whitebox_adversarial(attack, classifier, task.x_test[:n], task.y_test[:n], eps, seed)
                row["attack_seconds"] = time.perf_counter() - t0
                row["RA"] = robust_accuracy(classifier.predict(x_adv, batch_size=512).argmax(1), task.y_test[:n])
                row["n_test"] = n
            else:
                if job["encoder"] not in list_encoders(backdoored=True):
                    raise ValueError("no recorded trigger: 'badencoder' rows need a backdoored zoo encoder")
                info_task = {t["task"]: t for t in backdoor_targets(job["encoder"])}
                name = task.name.replace("fashion_mnist_subset", "fashion_mnist")
                if name not in info_task:
                    raise ValueError(f"{job['encoder']} has no backdoor target for task {task.name} "
                                     f"(targets: {sorted(info_task)})")  # fmt: skip
                target = info_task[name]
                pred = classifier.predict(target["trigger"].apply(task.x_test), batch_size=512).argmax(1)
                row["ASR"] = attack_success_rate(pred, target["target"], task.y_test, exclude_target_class=True)
                row["target"] = target["target"]
                row["base_encoder"] = encoder_info(job["encoder"]).get("base_encoder")
        except (ValueError, RuntimeError) as err:
            row["status"] = f"error: {err}"
            logger.warning("cell %s failed: %s", cell, err)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------- runner
def _perturbation_file(folder: Path, key: tuple) -> Path:
    encoder, attack, eps_255, seed = key
    return folder / f"{Path(str(encoder)).stem}_{attack}_eps{eps_255:g}_s{seed}.npz"


def _save_perturbation(folder: Path, key: tuple, learnt: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"encoder": key[0], "attack": key[1], "eps_255": key[2], "seed": key[3],
            "fooling_rate": learnt["fooling_rate"], "attack_seconds": learnt["attack_seconds"]}  # fmt: skip
    path = _perturbation_file(folder, key)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, noise=learnt["noise"], meta=json.dumps(meta))
    tmp.replace(path)


def _load_perturbation(folder: Path, key: tuple) -> dict | None:
    path = _perturbation_file(folder, key)
    if not path.exists():
        return None
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        return {"noise": data["noise"], "fooling_rate": meta["fooling_rate"], "attack_seconds": meta["attack_seconds"]}


def run_grid(
    config: GridConfig,
    out: str | Path,
    backend: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    on_rows: Callable[[list[dict]], None] | None = None,
    perturbation_dir: str | Path | None = None,
) -> pd.DataFrame:
    """
    Run every cell of ``config`` not yet in the results file ``out`` and return the rows of ``config``'s cells.

    :param config: The grid.
    :param out: Results CSV; rows are appended (atomically) as each job finishes, and cells already in it are
                skipped, so a killed run restarts where it stopped.
    :param backend: ``"local"`` (this process) or ``"ray"`` (one Ray task per perturbation and per job; GPU jobs
                    request a GPU).
    :param ray_address: Address of an existing Ray cluster (``"auto"``, ``"ray://host:10001"``); default a local
                        Ray instance.
    :param progress: A progress bar over jobs.
    :param on_rows: Called with each job's rows after they are written.
    :param perturbation_dir: Where the universal perturbations are kept (``.npz`` with their fooling rate and
                             time; default ``perturbations/`` next to ``out``); a restarted run reuses them.
    :raises ValueError: the grid has no cells.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    cells = config.cells()
    if not cells:
        raise ValueError("The grid has no cells: give at least one encoder, task, defence, attack, budget and seed.")
    store = ResultStore(out, KEY)
    todo = [c for c in cells if not store.has(**c)]
    jobs: dict[tuple, list[dict]] = {}
    for cell in todo:
        jobs.setdefault((cell["encoder"], cell["task"], cell["defence"], cell["seed"]), []).append(cell)
    needed = sorted({(c["encoder"], c["attack"], c["eps_255"], c["seed"]) for c in todo
                     if attack_kind(c["attack"]) == "universal"})  # fmt: skip
    logger.info("%d of %d cells to run in %d jobs, %d perturbations", len(todo), len(cells), len(jobs), len(needed))
    folder = Path(out).parent / "perturbations" if perturbation_dir is None else Path(perturbation_dir)
    if jobs:
        runner = _run_local if backend == "local" else _run_ray
        runner(config, jobs, needed, store, folder, ray_address, progress, on_rows)
    wanted = {store.key_of(c) for c in cells}  # the file may hold other grids' cells too
    frame = store.frame
    return frame[[store.key_of(r) in wanted for r in frame[list(KEY)].to_dict("records")]].reset_index(drop=True)


def _job_dict(key: tuple) -> dict:
    return dict(zip(("encoder", "task", "defence", "seed"), key, strict=True))


def _run_local(config, jobs, needed, store, folder, ray_address, progress, on_rows) -> None:
    perturbations = {}
    for key in tqdm(needed, desc="universal perturbations", disable=not progress):
        perturbations[key] = _load_perturbation(folder, key)
        if perturbations[key] is None:
            perturbations[key] = learn_perturbation(config, *key)
            _save_perturbation(folder, key, perturbations[key])
    for key, cells in tqdm(jobs.items(), desc="downstream models", disable=not progress):
        rows = run_job(config, _job_dict(key), cells, perturbations)
        store.append(rows)
        if on_rows is not None:
            on_rows(rows)


def _run_ray(config, jobs, needed, store, folder, ray_address, progress, on_rows) -> None:
    try:
        import ray
    except ImportError as err:
        raise ImportError("The Ray backend needs Ray: pip install 'art_ssl[ray]'.") from err
    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False,
                 **({} if ray_address else {"include_dashboard": False}))  # fmt: skip
    try:
        gpus = 1 if config.device_type == "gpu" else 0
        learn = ray.remote(num_gpus=gpus)(learn_perturbation)
        job_fn = ray.remote(num_gpus=gpus)(run_job)
        config_ref = ray.put(config)
        perturbations = {key: _load_perturbation(folder, key) for key in needed}
        refs = {key: learn.remote(config_ref, *key) for key, value in perturbations.items() if value is None}
        for key, learnt in zip(refs, ray.get(list(refs.values())), strict=True):
            perturbations[key] = learnt
            _save_perturbation(folder, key, learnt)
        pert_ref = ray.put(perturbations)
        pending = {job_fn.remote(config_ref, _job_dict(key), cells, pert_ref): key for key, cells in jobs.items()}
        bar = tqdm(total=len(pending), desc="downstream models (ray)", disable=not progress)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            rows = ray.get(done[0])
            pending.pop(done[0])
            store.append(rows)  # written as each job finishes, in completion order
            bar.update(1)
            if on_rows is not None:
                on_rows(rows)
        bar.close()
    finally:
        if started:
            ray.shutdown()
