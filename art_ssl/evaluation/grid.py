"""
The audit grid: encoders x downstream tasks x defences x attacks x budgets -> one pandas row per cell (BA, RA, ASR,
fooling rate, times, seed, versions), appended to a results file as each cell finishes.

Work is grouped so nothing is computed twice: each universal perturbation once per (encoder, attack, eps, seed),
from the attacker's unlabelled images; each downstream model once per (encoder, task, defence, seed) job, which then
faces every attack of its cells. Every row and cached perturbation is keyed by a hash of everything that produced
it (see :func:`run_grid`): a killed run restarted on the same file skips the finished cells, a run with other
settings never takes the old ones for its own. Jobs run in this
process (``backend="local"``) or as Ray tasks (``backend="ray"``; ``pip install "ray>=2.9"``).

The grid is split by concern: :mod:`~art_ssl.evaluation.config` (what to run), :mod:`~art_ssl.evaluation.work`
(loading, perturbation learning, the work plan's keys), :mod:`~art_ssl.evaluation.cache` (the perturbation cache),
:mod:`~art_ssl.evaluation.threat` (crafting, the victim, applying a perturbation) and this module, which runs the
cells (:func:`run_grid`, :func:`run_job`) and still exports every name it had before the split.

    >>> from art_ssl.evaluation import GridConfig, run_grid
    >>> frame = run_grid(GridConfig(encoders=("simclr_r18",), attacks=("ssp", "pgd"), defences=("none",)),
    ...                  "audit/results.csv")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from art_ssl.evaluation.cache import load_perturbation, perturbation_file, save_perturbation
from art_ssl.evaluation.config import (
    AXES,
    BACKENDS,
    DOWNSTREAM_ONLY,
    KEY,
    NOT_KEYED,
    POST_HOC_DEFENCES,
    GridConfig,
    check_attack_name,
    versions,
)
from art_ssl.evaluation.registry import (
    attack_kind,
    dae_source,
    flag_rate,
    make_defence_trainer,
    whitebox_adversarial,
)
from art_ssl.evaluation.store import ResultStore, ResultsWriteError, check_output_folder
from art_ssl.evaluation.threat import apply_perturbation, build_victim, craft_perturbation, defended_encoder
from art_ssl.evaluation.work import _encoder, _Keys, _surrogate_images, _task, learn_perturbation

logger = logging.getLogger(__name__)

# Names of the modules this one was split into, importable from here as before.
_perturbation_file, _save_perturbation, _load_perturbation = perturbation_file, save_perturbation, load_perturbation
__all__ = [
    "AXES",
    "BACKENDS",
    "DOWNSTREAM_ONLY",
    "KEY",
    "NOT_KEYED",
    "POST_HOC_DEFENCES",
    "GridConfig",
    "ResultsWriteError",
    "check_attack_name",
    "learn_perturbation",
    "run_grid",
    "run_job",
    "versions",
]


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

    Resuming: a cell is identified by its ``cell_key``, a hash of everything that produced it (encoder weights and
    loading options, the task's data, every setting, the perturbation's key, the art_ssl version; see
    :class:`_Keys`). A rerun with the same configuration skips its finished cells; a rerun with other settings into
    the same file computes its own cells beside the old rows, which stay in the file, and the returned frame (so
    the report) holds only the current configuration's cells. Two runs into one file at once merge their rows
    under a lock (:class:`~art_ssl.evaluation.store.ResultStore`); a cell both computed is kept once.

    :param config: The grid.
    :param out: Results CSV; rows are appended (atomically) as each job finishes.
    :param backend: ``"local"`` (this process) or ``"ray"`` (one Ray task per perturbation and per job; GPU jobs
                    request a GPU).
    :param ray_address: Address of an existing Ray cluster (``"auto"``, ``"ray://host:10001"``); default a local
                        Ray instance.
    :param progress: A progress bar over jobs.
    :param on_rows: Called with each job's rows after they are written.
    :param perturbation_dir: Where the universal perturbations are kept (``.npz`` with their key, fooling rate and
                             time; default ``perturbations/`` next to ``out``); a restarted run reuses those whose
                             recorded key matches.
    :raises ValueError: the grid has no cells, or an output folder cannot be written.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    if not isinstance(config, GridConfig):
        raise TypeError(f"`config` must be a GridConfig, got {type(config).__name__}.")
    cells = config.cells()
    if not cells:
        raise ValueError("The grid has no cells: give at least one encoder, task, defence, attack, budget and seed.")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"`out` '{out}' is a folder; pass the results file (e.g. '{out / 'results.csv'}').")
    check_output_folder(out.parent, "out")
    folder = out.parent / "perturbations" if perturbation_dir is None else Path(perturbation_dir)
    check_output_folder(folder, "perturbation_dir")
    store = ResultStore(out, ("cell_key",), legacy_columns=KEY)
    keys = _Keys(config)
    cells = [keys.annotate(c) for c in cells]
    todo = [c for c in cells if not store.has(**c)]
    jobs: dict[tuple, list[dict]] = {}
    for cell in todo:
        jobs.setdefault((cell["encoder"], cell["task"], cell["defence"], cell["seed"]), []).append(cell)
    # (key, encoder it is crafted on, universal attack, budget, seed): a transfer cell's comes from another encoder
    needed = sorted(
        {
            (c["perturbation_key"], c["dae_encoder"], dae_source(c["attack"])[1], c["eps_255"], c["seed"])
            for c in todo
            if c["perturbation_key"]
        }
    )
    logger.info("%d of %d cells to run in %d jobs, %d perturbations", len(todo), len(cells), len(jobs), len(needed))
    if jobs:
        runner = _run_local if backend == "local" else _run_ray
        runner(config, jobs, needed, store, folder, ray_address, progress, on_rows)
    store.refresh()
    wanted = {store.key_of(c) for c in cells}  # the file may hold other grids' (or other settings') cells too
    frame = store.frame
    return frame[[store.key_of(r) in wanted for r in frame[["cell_key"]].to_dict("records")]].reset_index(drop=True)


def _job_dict(key: tuple) -> dict:
    return dict(zip(("encoder", "task", "defence", "seed"), key, strict=True))


def _noise_shape(config: GridConfig, encoder: str) -> tuple[int, ...]:
    return (1, *_encoder(encoder, config.size, config.device_type, config.encoder_options).input_shape)


def _run_local(config, jobs, needed, store, folder, ray_address, progress, on_rows) -> None:
    perturbations = {}
    for need in tqdm(needed, desc="universal perturbations", disable=not progress):
        learnt = load_perturbation(folder, need, _noise_shape(config, need[1]))
        if learnt is None:
            learnt = learn_perturbation(config, *need[1:])
            save_perturbation(folder, need, learnt)
        perturbations[need[0]] = learnt
    for key, cells in tqdm(jobs.items(), desc="downstream models", disable=not progress):
        store.refresh()  # another run into the same file may have finished these cells meanwhile
        cells = [c for c in cells if not store.has(**c)]
        if not cells:
            continue
        rows = run_job(config, _job_dict(key), cells, perturbations)
        store.append(rows)
        if on_rows is not None:
            on_rows(rows)


def _run_ray(config, jobs, needed, store, folder, ray_address, progress, on_rows) -> None:
    try:
        import ray
    except ImportError as err:
        raise ImportError("The Ray backend needs Ray: pip install 'ray>=2.9'.") from err
    started = not ray.is_initialized()
    if started:
        local_options: dict[str, Any] = {} if ray_address else {"include_dashboard": False}
        ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False, **local_options)
    try:
        gpus = 1 if config.device_type == "gpu" else 0
        learn = ray.remote(num_gpus=gpus)(learn_perturbation)
        job_fn = ray.remote(num_gpus=gpus)(run_job)
        config_ref = ray.put(config)
        perturbations = {need[0]: load_perturbation(folder, need, _noise_shape(config, need[1])) for need in needed}
        refs = {need: learn.remote(config_ref, *need[1:]) for need in needed if perturbations[need[0]] is None}
        for need, learnt in zip(refs, ray.get(list(refs.values())), strict=True):
            perturbations[need[0]] = learnt
            save_perturbation(folder, need, learnt)
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


def _degenerate_logits(logits: np.ndarray, what: str) -> str | None:
    """Why predictions ``logits`` cannot be scored (a non-``ok`` status), or ``None`` when they can."""
    if not np.isfinite(logits).all():
        return f"degenerate: non-finite logits on {what} (NaN or inf weights, or a preprocessing std of 0)"
    return None


#: One-sided z of the chance-level check (p < 0.001): a benign accuracy at most this many standard errors above the
#: majority-class rate is not evidence that the model learnt anything.
CHANCE_Z = 3.09


def _chance_level(ba: float, y_test: np.ndarray) -> str | None:
    """A ``degenerate: chance-level ...`` status when benign accuracy ``ba`` is not significantly above the best a
    label-blind predictor scores (the test set's majority-class rate ``p0``; one-sided binomial z-test at
    :data:`CHANCE_Z`, normal approximation: ``ba <= p0 + z sqrt(p0 (1 - p0) / n)``), else ``None``.

    Why: a near-constant predictor (a collapsed adversarial fine-tuning, e.g. BA 0.102 on 540 ten-class test images)
    predicts more than one class, so the constant-predictor check passes it, yet its RA measures nothing: it sits at
    the class prior with or without an attack and would read as "robust"."""
    n = len(y_test)
    p0 = float(np.bincount(np.asarray(y_test, dtype=np.int64)).max()) / n
    threshold = p0 + CHANCE_Z * float(np.sqrt(p0 * (1.0 - p0) / n))
    if ba > threshold:
        return None
    return (
        f"degenerate: chance-level predictor (BA {ba:.3f} is not above the majority-class rate {p0:.3f} by "
        f"{CHANCE_Z} standard errors on {n} test images, i.e. > {threshold:.3f}; training collapsed)"
    )


def run_job(config: GridConfig, job: dict, cells: list[dict], perturbations: dict) -> list[dict]:
    """Train one downstream model (``job``: encoder, task, defence, seed) and evaluate it under ``cells``.
    A model whose clean logits are not finite, that predicts one class for every test image, or whose benign accuracy
    is not significantly above chance (:func:`_chance_level`) gets rows with a ``degenerate: ...`` status (never
    ``ok``): its numbers are not a robustness result."""
    from art_ssl.metrics import attack_success_rate, benign_accuracy, robust_accuracy
    from art_ssl.zoo import backdoor_targets, encoder_info, list_encoders

    seed = job["seed"]
    public = _encoder(job["encoder"], config.size, config.device_type, config.encoder_options)
    task = _task(job["task"], config.size, public.input_shape[0], config.n_train, config.n_test, seed)
    # a copy of the cached public encoder (never trained), with its preprocessing in front
    classifier = build_victim(public, task.nb_classes, seed=seed, device_type=config.device_type)
    start = time.perf_counter()
    head_epochs = max(config.epochs, 10)  # a head on the frozen encoder is cheap (embedded once)
    if job["defence"] in POST_HOC_DEFENCES:  # they repair a trained downstream model: train its head first
        make_defence_trainer(
            "none",
            classifier,
            head_epochs,
            batch_size=config.batch_size,
            seed=seed,
            verbose=config.verbose,
            amp=config.amp,
        ).fit(task.x_train, task.y_train)
    epochs = head_epochs if job["defence"] == "none" else config.epochs_for(job["task"])
    trainer = make_defence_trainer(
        job["defence"],
        classifier,
        epochs,
        batch_size=config.batch_size,
        pgd_steps=config.pgd_steps,
        seed=seed,
        verbose=config.verbose,
        amp=config.amp,
        stage2_epochs=config.defence_settings.genaf_stage2_epochs,
        sensitivity_samples=config.defence_settings.genaf_sensitivity_samples,
        sensitivity_epochs=config.defence_settings.genaf_sensitivity_epochs,
        encoder_name=job["encoder"],
        defence_settings=config.defence_settings,
        lr_milestones=config.lr_milestones_for(job["task"], job["defence"]),
        load_encoder=lambda spec: _encoder(spec, config.size, config.device_type),
    )
    trainer.fit(task.x_train, task.y_train)
    classifier = trainer.get_classifier()  # ZePAD's is its fused model
    detector = trainer.get_detector() if hasattr(trainer, "get_detector") else None  # ZePAD's DAE detector
    train_seconds = time.perf_counter() - start
    logits = classifier.predict(task.x_test, batch_size=512)
    model_status = _degenerate_logits(logits, "clean test images")
    ba = np.nan
    if model_status is None:
        pred = logits.argmax(1)
        ba = benign_accuracy(pred, task.y_test)
        if len(np.unique(pred)) == 1:
            model_status = (
                f"degenerate: constant predictor (every test image is class {int(pred[0])}; "
                f"training diverged or the encoder's embeddings are constant)"
            )
        else:
            model_status = _chance_level(ba, task.y_test)
    detector_cols = {}  # ZePAD's flag rate on clean test images
    if detector is not None and model_status is None:
        detector_cols = {"flag_rate_clean": flag_rate(detector, task.x_test)}
    adaptive: dict[tuple, dict] = {}  # perturbations crafted on this defended model: (attack, eps) -> learnt
    rows = []
    for cell in cells:
        attack, eps = cell["attack"], cell["eps_255"] / 255
        row = {
            **cell,
            "BA": ba,
            "RA": np.nan,
            "ASR": np.nan,
            "fooling_rate": np.nan,
            "attack_seconds": np.nan,
            "train_seconds": round(train_seconds, 2),
            "epochs": epochs,
            "size": config.size,
            "n_train": len(task.x_train),
            "n_test": len(task.x_test),
            "status": "ok",
            **detector_cols,
            **versions(),
        }
        if model_status is not None:
            row["status"] = model_status
            rows.append(row)
            continue
        kind = attack_kind(attack)
        try:
            if kind in ("universal", "adaptive"):
                if kind == "universal":
                    learnt = perturbations[cell["perturbation_key"]]
                else:
                    learnt = _adaptive_perturbation(config, job, public, classifier, attack, adaptive, cell)
                if not np.isfinite(learnt["noise"]).all():
                    raise _Degenerate("degenerate: the universal perturbation holds NaN or inf")
                x_adv = apply_perturbation(task.x_test, learnt["noise"])
                row["RA"] = _accuracy_or_fail(classifier, x_adv, task.y_test, robust_accuracy)
                row["fooling_rate"], row["attack_seconds"] = learnt["fooling_rate"], learnt["attack_seconds"]
                if detector is not None:
                    row["flag_rate_attacked"] = flag_rate(detector, x_adv)
            elif kind == "whitebox":
                n = min(config.whitebox_n, len(task.x_test))
                t0 = time.perf_counter()
                x_adv = whitebox_adversarial(attack, classifier, task.x_test[:n], task.y_test[:n], eps, seed)
                row["attack_seconds"] = time.perf_counter() - t0
                row["RA"] = _accuracy_or_fail(classifier, x_adv, task.y_test[:n], robust_accuracy)
                row["n_test"] = n
                if detector is not None:
                    row["flag_rate_attacked"] = flag_rate(detector, x_adv)
            else:
                if job["encoder"] not in list_encoders(backdoored=True):
                    raise ValueError("no recorded trigger: 'badencoder' rows need a backdoored zoo encoder")
                info_task = {t["task"]: t for t in backdoor_targets(job["encoder"])}
                name = task.name.replace("fashion_mnist_subset", "fashion_mnist")
                if name not in info_task:
                    raise ValueError(
                        f"{job['encoder']} has no backdoor target for task {task.name} (targets: {sorted(info_task)})"
                    )
                target = info_task[name]
                logits_bd = classifier.predict(target["trigger"].apply(task.x_test), batch_size=512)
                status = _degenerate_logits(logits_bd, "triggered test images")
                if status is not None:
                    raise _Degenerate(status)
                row["ASR"] = attack_success_rate(
                    logits_bd.argmax(1), target["target"], task.y_test, exclude_target_class=True
                )
                row["target"] = target["target"]
                row["base_encoder"] = encoder_info(job["encoder"]).get("base_encoder")
        except _Degenerate as err:
            row["status"] = str(err)
            logger.warning("cell %s: %s", cell, err)
        except (ValueError, RuntimeError) as err:
            row["status"] = f"error: {err}"
            logger.warning("cell %s failed: %s", cell, err)
        rows.append(row)
    return rows


class _Degenerate(Exception):
    """A cell whose number would be meaningless; its message is the row's status."""


def _adaptive_perturbation(config: GridConfig, job: dict, public, classifier, attack: str, done: dict, cell: dict):
    """``adaptive:<attack>``: the universal attack crafted on the *defended* model's encoder (the attacker knows the
    defence and holds the fine-tuned encoder), from the same unlabelled images and settings as the standard DAE;
    once per (attack, budget) of the trained model, never cached (it depends on the training)."""
    from art_ssl.evaluation.surrogate import surrogate_classifier

    base = dae_source(attack)[1]
    key = (base, cell["eps_255"])
    if key not in done:
        encoder = defended_encoder(classifier, public, device_type=config.device_type)
        x_sur = _surrogate_images(config, job["encoder"], job["seed"])
        surrogate = surrogate_classifier(encoder, x_sur, seed=job["seed"]) if base in ("uapepgd", "art_uap") else None
        done[key] = craft_perturbation(
            base, encoder, cell["eps_255"], x_sur, surrogate, config.attack_settings, seed=job["seed"], amp=config.amp
        )
    return done[key]


def _accuracy_or_fail(classifier, x_adv: np.ndarray, y: np.ndarray, metric) -> float:
    logits = classifier.predict(x_adv, batch_size=512)
    status = _degenerate_logits(logits, "attacked test images")
    if status is not None:
        raise _Degenerate(status)
    return metric(logits.argmax(1), y)
