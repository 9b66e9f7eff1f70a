"""
Record (or compare) the exact outputs of a few seeded steps of every loop that the shared core drives: SSL
pre-training, TRADES, Gen-AF (stage 1 and 2, with its head warm start), PAP (base, UGS) and AdvEncoder (perturbation,
patch) through ``learn_universal`` (one with an early stop), SSP, UAPEPGD and BadEncoder, and the batched inference
of :func:`art_ssl.core.batching.map_batches` where the loops above do not reach it (``PyTorchEncoder.predict`` and
``get_activations``, head-only fine-tuning, the torchattacks wrapper, ZePAD's detector, the k-means fooling rate), on
tiny Fashion-MNIST.

Used to check that a refactoring of the core changes no bit (issue 17):

    PYTHONPATH=. python tools/core_fingerprint.py record /tmp/before.pt     # on the old code
    PYTHONPATH=. python tools/core_fingerprint.py compare /tmp/before.pt    # on the new code: exit 1 on any change

The caller's global RNG is seeded before each run, so that a run drawing from it is reproducible on both sides.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from art_ssl.attacks.evasion import PAP, SSP, UAPEPGD, AdvEncoder, TorchattacksAttack
from art_ssl.attacks.poisoning import BadEncoder
from art_ssl.data import load_task
from art_ssl.defences.detector import ZePADDetector
from art_ssl.defences.trainer import (
    FineTuningTrainer,
    GenAFTrainer,
    MARTTrainer,
    SuperFineTuningTrainer,
    TRADESTrainer,
    ZePADModel,
)
from art_ssl.defences.transformer import EncoderDistillation
from art_ssl.estimators import PyTorchEncoder, encoder_classifier
from art_ssl.models import MLPHead, SmallCNN
from art_ssl.ssl import pretrain


def _seed_globals() -> None:
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)


def _data():
    task = load_task("fashion_mnist_subset", size=16, n_train=48, n_test=16)
    return task.x_train, task.y_train, task.x_test, task.y_test


def _classifier():
    torch.manual_seed(0)
    head = MLPHead(16, 10, hidden=(16,), dropout=0.3)
    return encoder_classifier(
        SmallCNN(1, (8, 16), stem_stride=2),
        10,
        head=head,
        freeze_encoder=False,
        input_shape=(1, 16, 16),
        device_type="cpu",
    )


def _encoder() -> PyTorchEncoder:
    torch.manual_seed(0)
    return PyTorchEncoder(SmallCNN(1, (8, 16), stem_stride=2).eval(), (1, 16, 16), device_type="cpu")


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _history(frame) -> dict[str, list]:
    return {c: [v if isinstance(v, str) else float(v) for v in frame[c]] for c in frame.columns if c != "seconds"}


def run_all() -> dict[str, dict]:
    x, y, xv, yv = _data()
    out: dict[str, dict] = {}
    common = {"verbose": False, "amp": False}

    _seed_globals()
    torch.manual_seed(0)
    enc = SmallCNN(1, (8, 16), stem_stride=2)
    res = pretrain(enc, x, method="simclr", nb_epochs=2, batch_size=16, seed=3, device_type="cpu", **common)
    out["pretrain_simclr"] = {"weights": _weights(res.method), "history": _history(res.history)}
    _seed_globals()
    torch.manual_seed(0)
    enc = SmallCNN(1, (8, 16), stem_stride=2)
    res = pretrain(enc, x, method="byol", nb_epochs=2, batch_size=16, seed=3, device_type="cpu", **common)
    out["pretrain_byol"] = {"weights": _weights(res.method), "history": _history(res.history)}

    _seed_globals()
    clf = _classifier()
    t = TRADESTrainer(clf, nb_epochs=2, batch_size=16, pgd_steps=2, validation_pgd_steps=2, seed=5, **common)
    t.fit(x, y, validation_data=(xv, yv))
    out["trades"] = {"weights": _weights(clf.model), "history": _history(t.history_)}

    _seed_globals()
    clf = _classifier()
    g = GenAFTrainer(
        clf,
        stages=(1, 2),
        nb_epochs=2,
        batch_size=16,
        pgd_steps=2,
        validation_pgd_steps=1,
        head_init_epochs=2,
        stage2_epochs=2,
        sensitivity_samples=16,
        sensitivity_epochs=1,
        sensitivity_pgd_steps=1,
        sensitivity_batch_size=8,
        seed=7,
        **common,
    )
    g.fit(x, y, validation_data=(xv, yv))
    out["genaf"] = {
        "weights": _weights(clf.model),
        "history": _history(g.history_),
        "head_init": _history(g.head_init_history_),
        "sensitivity": dict(g.layer_sensitivity_),
    }

    others = {
        "mart": lambda c: MARTTrainer(
            c, nb_epochs=2, batch_size=16, pgd_steps=2, validation_pgd_steps=0, seed=5, **common
        ),
        "pgd_at_warm": lambda c: FineTuningTrainer(
            c,
            adversarial=True,
            nb_epochs=2,
            batch_size=16,
            pgd_steps=2,
            head_init="probe",
            head_init_epochs=1,
            eps_warmup_epochs=1,
            validation_pgd_steps=0,
            seed=5,
            **common,
        ),
        "super_finetune": lambda c: SuperFineTuningTrainer(
            c, nb_epochs=2, batch_size=16, steps_up=2, steps_down=2, seed=5, **common
        ),
    }
    for name, make in others.items():
        _seed_globals()
        clf = _classifier()
        t = make(clf)
        t.fit(x, y)
        out[name] = {"weights": _weights(clf.model), "history": _history(t.history_)}

    _seed_globals()
    distil = EncoderDistillation(
        _encoder(),
        layers=["layer1", "layer2"],
        nb_epochs=2,
        batch_size=16,
        teacher_epochs=1,
        warmup_epochs=1,
        seed=29,
        verbose=False,
    )
    student = distil(x)
    out["distillation"] = {"weights": _weights(student.model), "history": _history(distil.history_)}

    attacks = {
        "pap_base": lambda e: PAP(e, layer="stem", batch_size=16, nb_epochs=2, seed=11, verbose=False),
        "pap_ugs": lambda e: PAP(
            e,
            variant="ugs",
            layer="stem",
            batch_size=16,
            nb_epochs=2,
            ugs_batch=4,
            ugs_resample=2,
            seed=11,
            verbose=False,
        ),
        "advencoder_perturbation": lambda e: AdvEncoder(
            e, batch_size=16, nb_epochs=2, nz_batch=4, ngf=8, seed=13, verbose=False
        ),
        "advencoder_patch": lambda e: AdvEncoder(
            e, variant="patch", batch_size=16, nb_epochs=2, nz_batch=4, ngf=8, seed=13, verbose=False
        ),
        "ssp": lambda e: SSP(e, layer="layer1", batch_size=16, nb_epochs=2, seed=17, verbose=False),
    }
    for name, make in attacks.items():
        _seed_globals()
        attack = make(_encoder())
        attack.set_params(amp=False)
        x_adv = attack.generate(x)
        out[name] = {
            "noise": torch.from_numpy(attack.noise),
            "x_adv": torch.from_numpy(x_adv),
            "history": list(attack.history),
            "steps": attack.steps,
        }
    _seed_globals()
    attack = PAP(_encoder(), layer="stem", batch_size=8, nb_epochs=3, seed=11, verbose=False)
    attack.generate(x, stop=lambda d: float(d.abs().max()) > 0, check_every=2)
    out["pap_early_stop"] = {
        "noise": torch.from_numpy(attack.noise),
        "history": list(attack.history),
        "steps": attack.steps,
    }
    _seed_globals()
    attack = PAP(_encoder(), layer="stem", batch_size=8, nb_epochs=3, max_iter=7, seed=11, verbose=False)
    attack.generate(x)
    out["pap_max_iter"] = {
        "noise": torch.from_numpy(attack.noise),
        "history": list(attack.history),
        "steps": attack.steps,
    }

    _seed_globals()
    clf = _classifier()
    uap = UAPEPGD(clf, batch_size=8, nb_epochs=2, inner_steps=3, step_decay_after=16, seed=19, verbose=False)
    x_adv = uap.generate(x)
    out["uapepgd"] = {"noise": torch.from_numpy(uap.noise), "x_adv": torch.from_numpy(x_adv), "steps": uap.steps}
    _seed_globals()
    uap = UAPEPGD(clf, batch_size=8, nb_epochs=2, max_iter=3, seed=19, verbose=False)
    uap.generate(x, stop=lambda d: True, check_every=2)
    out["uapepgd_stop"] = {"noise": torch.from_numpy(uap.noise), "steps": uap.steps}

    _seed_globals()
    bad = BadEncoder(_encoder(), nb_epochs=2, batch_size=16, seed=23, verbose=False)
    backdoored = bad.poison_estimator(x)
    out["badencoder"] = {"weights": _weights(backdoored.model), "history": _history(bad.history_)}
    out["inference"] = _inference_runs(x, y)
    return out


def _inference_runs(x: np.ndarray, y: np.ndarray) -> dict[str, torch.Tensor]:
    """The batched inference sites, with batch sizes that leave a partial last batch."""
    _seed_globals()
    enc = _encoder()
    out = {
        "predict": torch.from_numpy(enc.predict(x, batch_size=7)),
        "activations": torch.from_numpy(enc.get_activations(x, layer="layer1", batch_size=7)),
    }
    clf = _classifier()
    FineTuningTrainer(clf, train_encoder=False, nb_epochs=2, batch_size=9, seed=3, verbose=False).fit(x, y)
    out.update(_weights(clf.model))
    pgd = TorchattacksAttack(clf, "PGD", batch_size=10, eps=0.1, alpha=0.03, steps=2)
    out["torchattacks_pgd"] = torch.from_numpy(pgd.generate(x[:25], y[:25]))
    mpae = [clf.model.eval(), _classifier().model.eval()]  # the fine-tuned head and a fresh one: different branches
    fused = PyTorchClassifier(
        ZePADModel(mpae, _classifier().model.eval()), torch.nn.CrossEntropyLoss(), (1, 16, 16), 10, clip_values=(0, 1)
    )
    gaps = ZePADDetector(fused).confidence_gap(x, batch_size=10)
    out.update({f"zepad_{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in gaps.items()})
    pap = PAP(_encoder(), layer="stem", eps=0.3, batch_size=16, nb_epochs=2, seed=11, verbose=False)
    x_adv = pap.generate(x)
    out["fooling_rate"] = torch.tensor(pap.embedding_fooling_rate(x, x_adv))
    return out


def _diff(a, b, path: str) -> list[str]:
    if isinstance(a, dict):
        keys = set(a) | set(b)
        return [d for k in sorted(keys, key=str) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or not torch.equal(a, b):
            gap = (
                (a.float() - b.float()).abs().max().item()
                if isinstance(b, torch.Tensor) and a.shape == b.shape
                else "?"
            )
            return [f"{path}: tensors differ (max |diff| {gap})"]
        return []
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (u, v) in enumerate(zip(a, b, strict=True)) for d in _diff(u, v, f"{path}[{i}]")]
    same_nan = isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)
    return [] if a == b or same_nan else [f"{path}: {a!r} != {b!r}"]


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("record", "compare"):
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import art_ssl

    print(f"art_ssl from {art_ssl.__file__}")
    outputs = run_all()
    if argv[1] == "record":
        torch.save(outputs, argv[2])
        print(f"recorded {len(outputs)} runs to {argv[2]}")
        return 0
    before = torch.load(argv[2], weights_only=False)
    diffs = _diff(before, outputs, "")
    for line in diffs:
        print("DIFF", line)
    print(f"{len(outputs)} runs compared: {'identical' if not diffs else f'{len(diffs)} differences'}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
