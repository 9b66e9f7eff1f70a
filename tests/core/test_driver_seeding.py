"""The shared core of issue 17: the scoped seeding policy, the step/epoch driver (batches, max steps, early stop,
history, checkpoint/resume), output-size probing and the one pixel-space forward."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from art_ssl.attacks.evasion import PAP, UAPEPGD
from art_ssl.attacks.poisoning import BadEncoder
from art_ssl.core.checkpoint import checkpoint_path
from art_ssl.core.driver import Checkpointing, epoch_batches, run_epochs
from art_ssl.core.forward import pixel_forward, preprocess
from art_ssl.core.probing import output_dim
from art_ssl.core.seeding import global_rng_state, scoped_seed
from art_ssl.defences.trainer import FineTuningTrainer
from art_ssl.estimators import PyTorchEncoder, encoder_classifier
from art_ssl.models import SmallCNN
from art_ssl.ssl import pretrain
from tests import resume_setup as setup


def _draw() -> tuple[float, float, float]:
    return float(torch.rand(())), float(np.random.rand()), random.random()


def _same_state(a: dict, b: dict) -> bool:
    numpy_same = all(np.array_equal(u, v) for u, v in zip(a["numpy"], b["numpy"], strict=True))
    return torch.equal(a["torch"], b["torch"]) and numpy_same and a["python"] == b["python"]


# ---------------------------------------------------------------------------------------------------- seeding
def test_scoped_seed_seeds_every_global_generator_and_restores_the_callers_state():
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    before = global_rng_state()
    with scoped_seed(5) as generator:
        inside = _draw()
        explicit = torch.rand(3, generator=generator)
    assert _same_state(before, global_rng_state())
    with scoped_seed(5) as generator:
        assert _draw() == inside  # same seed, same draws from torch, numpy and random
        assert torch.equal(torch.rand(3, generator=generator), explicit)
    with scoped_seed(6):
        assert _draw() != inside
    with pytest.raises(RuntimeError, match="boom"), scoped_seed(5):
        _draw()
        raise RuntimeError("boom")
    assert _same_state(before, global_rng_state())  # restored after an exception too


def test_scoped_seed_nests_and_refuses_bad_seeds():
    with scoped_seed(1):
        outer = global_rng_state()
        with scoped_seed(2):
            _draw()
        assert _same_state(outer, global_rng_state())
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match="seed"), scoped_seed(bad):
            pass


def _seed_caller(seed: int) -> dict:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return global_rng_state()


def _same_result_whatever_the_callers_state(run) -> None:
    """``run(caller_seed)`` builds its objects, seeds the caller's global generators with ``caller_seed``, calls
    art_ssl (which must leave that state as it found it) and returns the result: the same for two caller states."""
    first, second = run(1), run(2)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_trainer_fit_keeps_the_callers_rng_and_depends_on_its_seed_only():
    x, y = setup.data()

    def run(caller_seed):
        trainer = setup.trainer(nb_epochs=1)  # the head has dropout: the fit draws from the global generator
        state = _seed_caller(caller_seed)
        trainer.fit(x, y)
        assert _same_state(state, global_rng_state())
        return list(trainer.get_classifier().model.state_dict().values())

    _same_result_whatever_the_callers_state(run)


def test_pretrain_keeps_the_callers_rng_and_depends_on_its_seed_only():
    x, _ = setup.data()

    def run(caller_seed):
        encoder = setup.encoder()
        state = _seed_caller(caller_seed)
        result = pretrain(encoder, x, **{**setup.PRETRAIN, "nb_epochs": 1})  # kornia augmentations draw globally
        assert _same_state(state, global_rng_state())
        return list(result.method.state_dict().values())

    _same_result_whatever_the_callers_state(run)


def test_attacks_and_badencoder_keep_the_callers_rng_and_depend_on_their_seed_only():
    x, _ = setup.data()
    encoder = PyTorchEncoder(setup.encoder().eval(), (1, 16, 16), device_type="cpu")
    classifier = setup.trainer().get_classifier()

    def run(caller_seed):
        state = _seed_caller(caller_seed)
        pap = PAP(encoder, layer="stem", batch_size=16, seed=3, verbose=False)
        pap.set_params(amp=False)
        pap.generate(x)
        uap = UAPEPGD(classifier, batch_size=16, inner_steps=2, seed=3, verbose=False)
        uap.generate(x)
        bad = BadEncoder(encoder, nb_epochs=1, batch_size=16, seed=3, verbose=False)  # kornia draws globally
        backdoored = bad.poison_estimator(x)
        assert _same_state(state, global_rng_state())
        return [pap.noise, uap.noise, *backdoored.model.state_dict().values()]

    _same_result_whatever_the_callers_state(run)


# ---------------------------------------------------------------------------------------------------- driver
def test_epoch_batches_cover_the_data_once_in_a_seeded_order():
    batches = epoch_batches(10, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = epoch_batches(10, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    dropped = epoch_batches(10, batch_size=4, generator=torch.Generator().manual_seed(0), drop_last=True, sort=True)
    assert [b.tolist() for b in dropped] == [sorted(b.tolist()) for b in batches[:2]]


def test_run_epochs_counts_steps_stops_early_and_caps_steps():
    seen = []

    def step(idx, where):
        seen.append((where.epoch, where.index, where.count, len(idx)))
        return float(len(idx))

    def end_epoch(epoch, values, seconds):
        return {"epoch": epoch, "n": sum(values)}

    loop = run_epochs(n=10, batch_size=4, nb_epochs=2, generator=torch.Generator(), step=step, end_epoch=end_epoch)
    assert loop.steps == 6 and not loop.stopped_early
    assert loop.rows == [{"epoch": 1, "n": 10.0}, {"epoch": 2, "n": 10.0}]
    assert [s[2] for s in seen] == list(range(6)) and [s[:2] for s in seen[3:5]] == [(2, 0), (2, 1)]

    capped = run_epochs(n=10, batch_size=4, nb_epochs=5, generator=torch.Generator(), step=step, max_steps=4)
    assert capped.steps == 4
    stopped = run_epochs(
        n=10,
        batch_size=4,
        nb_epochs=5,
        generator=torch.Generator(),
        step=step,
        end_epoch=end_epoch,
        stop=lambda: True,
        check_every=2,
    )
    assert stopped.stopped_early and stopped.steps == 2 and stopped.rows == [{"epoch": 1, "n": 8.0}]
    with pytest.raises(ValueError, match="progress"):
        run_epochs(n=4, batch_size=2, nb_epochs=1, generator=torch.Generator(), step=step, progress="bar")


def _linear_fit(tmp_path, fail_after: int | None = None):
    """A tiny regression run by the driver, checkpointed; ``fail_after`` kills it (an exception) after that epoch's
    checkpoint."""
    with scoped_seed(0) as generator:
        model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1))
        x, y = torch.randn(20, 3), torch.randn(20, 1)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)

        def step(idx, where):
            loss = ((model(x[idx]) - y[idx]) ** 2).mean()  # dropout draws from the global generator
            opt.zero_grad()
            loss.backward()
            opt.step()
            return float(loss)

        def after_epoch(epoch, rows):
            if epoch == fail_after:
                raise KeyboardInterrupt

        checkpoint = Checkpointing(
            file=checkpoint_path(tmp_path, "run.pt"),
            fingerprint={"run": "linear"},
            state=lambda: {"model": model.state_dict(), "optimizer": opt.state_dict()},
            restore=lambda s: (model.load_state_dict(s["model"]), opt.load_state_dict(s["optimizer"])),
        )
        loop = run_epochs(
            n=20,
            batch_size=6,
            nb_epochs=4,
            generator=generator,
            step=step,
            end_epoch=lambda e, v, s: {"epoch": e, "loss": sum(v)},
            after_epoch=after_epoch,
            checkpoint=checkpoint,
        )
    return model, loop


def test_run_epochs_resumes_from_its_checkpoint_as_if_uninterrupted(tmp_path):
    reference, ref_loop = _linear_fit(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _linear_fit(tmp_path / "b", fail_after=2)
    resumed, loop = _linear_fit(tmp_path / "b")
    assert loop.rows == ref_loop.rows and loop.steps == ref_loop.steps == 16
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------- probing, forward
def test_output_dim_probes_once_in_eval_mode_and_restores_modes():
    encoder = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.Linear(36, 7))
    encoder.train()
    encoder[2].eval()
    running = encoder[1].running_mean.clone()
    state = global_rng_state()
    assert output_dim(encoder, input_shape=(1, 5, 5)) == 7
    assert encoder.training and encoder[1].training and not encoder[2].training  # each module's own mode is back
    assert torch.equal(running, encoder[1].running_mean)  # no BatchNorm statistic moved
    assert _same_state(state, global_rng_state())  # no dropout draw
    assert output_dim(SmallCNN(1, (8, 16), stem_stride=2), input_shape=(1, 16, 16)) == 16  # its feature_dim
    conv = nn.Conv2d(1, 2, 3)
    assert output_dim(conv, input_shape=(1, 5, 5), flatten=True) == 18
    with pytest.raises(ValueError, match=r"`encoder` must return \(N, D\)"):
        output_dim(conv, input_shape=(1, 5, 5), name="encoder")


def test_pixel_forward_applies_the_estimators_preprocessing_once_and_differentiably():
    torch.manual_seed(0)
    clf = encoder_classifier(
        SmallCNN(1, (8, 16), stem_stride=2),
        10,
        input_shape=(1, 16, 16),
        preprocessing=(0.3, 0.2),
        device_type="cpu",
    )
    clf.model.eval()
    x = torch.rand(4, 1, 16, 16, requires_grad=True)
    logits = pixel_forward(clf, x)
    assert torch.allclose(logits, clf.model((x - 0.3) / 0.2), atol=1e-6)
    assert np.allclose(logits.detach().numpy(), clf.predict(x.detach().numpy()), atol=1e-5)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.abs().sum() > 0
    assert torch.allclose(preprocess(clf, x, differentiable=False), (x - 0.3) / 0.2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        preprocess(clf, x.detach().numpy())


def test_head_warm_start_and_main_loop_checkpoint_to_their_own_files(tmp_path):
    """Before issue 17 both loops of a ``head_init="probe"`` fit wrote ``...-stage-main.pt``: the main loop then found
    the head fit's checkpoint and refused it (other data)."""
    x, y = setup.data()

    def fit(checkpoint_dir):
        trainer = setup.trainer(nb_epochs=1, pgd_steps=1)
        trainer = FineTuningTrainer(
            trainer.get_classifier(),
            adversarial=True,
            nb_epochs=1,
            batch_size=16,
            pgd_steps=1,
            head_init="probe",
            head_init_epochs=1,
            validation_pgd_steps=0,
            amp=False,
            verbose=False,
        )
        trainer.fit(x, y, checkpoint_dir=checkpoint_dir)
        return trainer

    first = fit(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["FineTuningTrainer-stage-head-init.pt", "FineTuningTrainer-stage-main.pt"]
    again = fit(tmp_path)  # both loops finished: resumed from their files, nothing trained again
    np.testing.assert_array_equal(first.history_["loss"], again.history_["loss"])
    for a, b in zip(
        first.get_classifier().model.state_dict().values(),
        again.get_classifier().model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_genaf_with_a_longer_stage2_resumes_its_finished_stage1_and_equals_an_uninterrupted_run(tmp_path):
    """Stage 1's checkpoint does not depend on stage-2-only settings: a second run asking for more stage-2 epochs
    (the first run's stage-2 file removed) trains no stage-1 step again (its stage-1 loss is never called) and
    ends with the bits of a run that had asked for them from the start."""
    from art_ssl.defences.trainer import GenAFTrainer

    x, y = setup.data()

    def fit(stage2_epochs, checkpoint_dir, forbid_stage1=False):
        classifier = setup.trainer().get_classifier()  # the same seeded model every time
        trainer = GenAFTrainer(
            classifier,
            nb_epochs=2,
            batch_size=16,
            pgd_steps=1,
            stage2_epochs=stage2_epochs,
            sensitivity_samples=16,
            sensitivity_epochs=1,
            validation_pgd_steps=0,
            amp=False,
            verbose=False,
        )
        if forbid_stage1:

            def no_stage1(*args):
                raise AssertionError("stage 1 trained again")

            trainer._batch_loss = no_stage1
        trainer.fit(x, y, checkpoint_dir=checkpoint_dir)
        return trainer

    fit(1, tmp_path / "run")
    # the finished stage 2 of the first run is another run's (its epochs differ): refused, so it goes
    with pytest.raises(ValueError, match="GenAFTrainer-stage-2.pt' was written by a run with other settings"):
        fit(2, tmp_path / "run", forbid_stage1=True)
    (tmp_path / "run" / "GenAFTrainer-stage-2.pt").unlink()
    longer = fit(2, tmp_path / "run", forbid_stage1=True)
    straight = fit(2, None)
    np.testing.assert_array_equal(longer.history_["loss"], straight.history_["loss"])
    assert list(longer.history_["stage"]) == ["1", "1", "2", "2"]
    for a, b in zip(longer.model.state_dict().values(), straight.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
