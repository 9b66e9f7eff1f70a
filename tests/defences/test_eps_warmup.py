"""The step-by-step budget warm-up of the adversarial trainers (issue 16, digits): ``eps_warmup_fraction``."""

import copy

import numpy as np
import pytest
import torch

from art_ssl.defences.trainer import EncoderHeadTrainer, FineTuningTrainer, GenAFTrainer, MARTTrainer, TRADESTrainer
from art_ssl.defences.trainer.warm_start import eps_ramp
from art_ssl.estimators import encoder_classifier
from art_ssl.models.heads import linear_head


def fresh_head_classifier(trained_classifier, seed=0):
    """The session's trained 28x28 encoder with a new random linear head."""
    torch.manual_seed(seed)
    encoder = copy.deepcopy(trained_classifier.model.encoder)
    head = linear_head(trained_classifier.model.head.in_features, 10)
    return encoder_classifier(encoder, 10, head=head, freeze_encoder=False, input_shape=(1, 28, 28), device_type="cpu")


def test_eps_ramp_is_linear_over_the_fraction_then_one():
    # 10 steps, fraction 0.5: f T + 1 = 6, so steps 0..4 use 1/6..5/6, step 5 on the full budget.
    assert [eps_ramp(s, 10, 0.5) for s in range(7)] == [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0, 1.0]
    # 8 steps, fraction 0.25: f T + 1 = 3.
    assert [eps_ramp(s, 8, 0.25) for s in range(3)] == [1 / 3, 2 / 3, 1.0]
    assert all(eps_ramp(s, 10, 0.0) == 1.0 for s in range(10))  # the papers' recipe: full budget from the start


def _record_budgets(monkeypatch):
    """Every (eps, step_size) the base PGD is asked for (``None``: the trainer's own)."""
    seen, original = [], EncoderHeadTrainer._pgd

    def recording(self, loss_fn, x, eps=None, step_size=None, **kwargs):
        seen.append((self.eps if eps is None else eps, self.step_size if step_size is None else step_size))
        return original(self, loss_fn, x, eps=eps, step_size=step_size, **kwargs)

    monkeypatch.setattr(EncoderHeadTrainer, "_pgd", recording)
    return seen


@pytest.mark.parametrize("make", [FineTuningTrainer, MARTTrainer], ids=["pgd_at", "mart"])
def test_training_pgd_budget_ramps_step_by_step_and_validation_uses_the_full_budget(
    trained_classifier, fmnist28, monkeypatch, make
):
    kwargs = {"adversarial": True} if make is FineTuningTrainer else {}
    trainer = make(
        fresh_head_classifier(trained_classifier),
        eps=0.1,
        step_size=0.05,
        pgd_steps=1,
        nb_epochs=2,
        batch_size=16,
        validation_pgd_steps=1,
        eps_warmup_fraction=0.5,
        verbose=False,
        **kwargs,
    )
    seen = _record_budgets(monkeypatch)
    x, y = fmnist28.x_train[:64], fmnist28.y_train[:64]  # 4 steps an epoch, 8 in all: f T + 1 = 5
    trainer.fit(x, y, validation_data=(fmnist28.x_test[:16], fmnist28.y_test[:16]))
    # Per epoch: 4 training PGDs, then one validation PGD (16 images, one batch) at the full budget.
    training = seen[0:4] + seen[5:9]
    validation = [seen[4], seen[9]]
    assert len(seen) == 10
    expected = [min(1.0, (s + 1) / 5) for s in range(8)]
    assert [e for e, _ in training] == pytest.approx([0.1 * f for f in expected])
    assert [s for _, s in training] == pytest.approx([0.05 * f for f in expected])
    assert validation == [(0.1, 0.05), (0.1, 0.05)]


def test_adversarial_only_trainers_warm_up_by_default_and_trades_does_not(trained_classifier):
    classifier = fresh_head_classifier(trained_classifier)
    assert FineTuningTrainer(classifier, adversarial=True).eps_warmup_fraction == 0.8
    assert MARTTrainer(classifier).eps_warmup_fraction == 0.8
    assert TRADESTrainer(classifier).eps_warmup_fraction == 0.0
    assert (
        "eps_warmup_fraction" in MARTTrainer.trainer_params
        and "eps_warmup_fraction" in FineTuningTrainer.trainer_params
    )


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.5", None])
@pytest.mark.parametrize(
    "make", [FineTuningTrainer, MARTTrainer, TRADESTrainer, GenAFTrainer], ids=["pgd_at", "mart", "trades", "genaf"]
)
def test_bad_eps_warmup_fraction_is_refused(trained_classifier, make, bad):
    with pytest.raises(ValueError, match="`eps_warmup_fraction` must be a number in \\[0, 1\\)"):
        make(fresh_head_classifier(trained_classifier), eps_warmup_fraction=bad)


def test_genaf_stage1_pgd_budget_follows_the_ramp_and_stage2_keeps_its_own(trained_classifier, fmnist28, monkeypatch):
    trainer = GenAFTrainer(
        fresh_head_classifier(trained_classifier),
        stages=(1, 2),
        head_init="random",
        lambda_gr=1.0,
        eps=0.1,
        step_size=0.05,
        pgd_steps=1,
        nb_epochs=2,
        batch_size=16,
        validation_pgd_steps=1,
        eps_warmup_fraction=0.5,
        stage2_epochs=1,
        sensitivity_samples=16,
        sensitivity_eps=0.2,
        sensitivity_step_size=0.04,
        sensitivity_epochs=1,
        verbose=False,
    )
    seen = _record_budgets(monkeypatch)
    x, y = fmnist28.x_train[:64], fmnist28.y_train[:64]  # 4 stage-1 steps an epoch, 8 in all: f T + 1 = 5
    trainer.fit(x, y, validation_data=(fmnist28.x_test[:16], fmnist28.y_test[:16]))
    # Stage 1: per epoch 4 training PGDs then one validation PGD; stage 2: the probe set's PGD, then its validation.
    assert len(seen) == 12
    training = seen[0:4] + seen[5:9]
    expected = [eps_ramp(s, 8, 0.5) for s in range(8)]
    assert expected[0] == pytest.approx(0.2) and expected[-1] == 1.0
    assert [e for e, _ in training] == pytest.approx([0.1 * f for f in expected])
    assert [s for _, s in training] == pytest.approx([0.05 * f for f in expected])
    assert [seen[4], seen[9], seen[11]] == [(0.1, 0.05)] * 3  # validation: the full budget
    assert seen[10] == (0.2, 0.04)  # stage 2's probe set: its own budget, never ramped
    assert trainer._eps_scale == 1.0


def test_genaf_auto_lambda_is_measured_at_the_full_budget_whatever_the_warmup(trained_classifier, fmnist28):
    """``lambda_gr="auto"`` is measured after the head warm start and before stage 1's first step: at the full
    budget, so the warm-up changes the budget schedule and not the weight (a head fit of one step would otherwise
    leave its own ramp, 1 / (f + 1), in place)."""
    weights = {}
    for fraction in (0.0, 0.5):
        trainer = GenAFTrainer(
            fresh_head_classifier(trained_classifier),
            stages=(1,),
            head_init="probe",
            head_init_epochs=1,
            eps_warmup_fraction=fraction,
            nb_epochs=1,
            batch_size=64,
            pgd_steps=2,
            validation_pgd_steps=0,
            verbose=False,
        )
        trainer.fit(fmnist28.x_train[:64], fmnist28.y_train[:64])
        weights[fraction] = trainer.lambda_gr_
    assert weights[0.0] == pytest.approx(weights[0.5], rel=1e-6)


def test_genaf_official_recipe_has_no_warmup(trained_classifier):
    classifier = fresh_head_classifier(trained_classifier)
    official = GenAFTrainer.official(classifier)
    assert official.eps_warmup_fraction == 0.0 and official.eps_warmup_epochs == 0
    assert {"eps_warmup_fraction", "eps_warmup_epochs"} <= set(GenAFTrainer.trainer_params)
    with pytest.raises(ValueError, match="`eps_warmup_epochs` must be an int >= 0"):
        GenAFTrainer(classifier, eps_warmup_epochs=-1)


def _defence_curves_module():
    from tests.conftest import evaluation_script

    return evaluation_script("defence_curves")


def test_defence_curves_convergence_rule():
    """< 1 point of BA and RA between the last two epochs is converged, unless the last 5 epochs moved by 2 points
    or more (a steady drift); a curve stuck at chance is not."""
    import pandas as pd

    curves = _defence_curves_module()
    rows = [("a", 1, 0.70, 0.40), ("a", 2, 0.745, 0.500), ("a", 3, 0.750, 0.505)]  # converged at epoch 3
    rows += [("b", 1, 0.70, 0.40), ("b", 2, 0.72, 0.45)]  # RA still moving by 5 points
    rows += [("c", 1, 0.10, 0.10), ("c", 2, 0.10, 0.10)]  # flat, at chance
    # each epoch 0.8 points of RA lower: the two-epoch rule passes, the 5-epoch window (4 points) does not
    rows += [("d", e, 0.90, 0.80 - 0.008 * e) for e in range(1, 8)]
    rows += [("e", e, 0.90 + 0.001 * (e % 2), 0.80 + 0.003 * (e % 2)) for e in range(1, 8)]  # noise, no trend
    # a step decay after epoch 5 lifts RA by 3 points once, then flat: judged on the epochs since the step
    rows += [("f", e, 0.90, 0.80 + 0.03 * (e > 5) + 0.001 * e) for e in range(1, 9)]
    df = pd.DataFrame(rows, columns=["setting", "epoch", "val_ba", "val_ra"]).assign(task="t", encoder="e")
    df["lr_encoder"] = 1e-4 * 0.96 ** df["epoch"] * np.where((df.setting == "f") & (df.epoch > 5), 0.1, 1.0)
    out = curves.convergence(df).set_index("setting")
    assert out.loc["a", "status"] == "converged" and out.loc["a", "change_ra"] == pytest.approx(0.005)
    assert out.loc["b", "status"] == "moving" and out.loc["b", "epochs"] == 2
    assert out.loc["c", "status"] == "collapsed (chance-level BA)"
    assert out.loc["d", "status"] == "drifting" and out.loc["d", "drift_ra"] == pytest.approx(-0.04)
    assert out.loc["e", "status"] == "converged" and out.loc["e", "drift_ba"] == pytest.approx(0.001)
    assert pd.isna(out.loc["a", "drift_ra"])  # 3 epochs: no window to judge a drift on
    assert out.loc["f", "status"] == "converged" and out.loc["f", "drift_ra"] == pytest.approx(0.002)
    # without the rates the step is indistinguishable from a drift
    assert curves.convergence(df.drop(columns="lr_encoder")).set_index("setting").loc["f", "status"] == "drifting"


def test_defence_curves_genaf_setting_reaches_the_trainer(trained_classifier):
    """``evaluations/defence_curves.py``'s setting syntax: ``genaf:...:rampF`` must reach Gen-AF's warm-up (the
    measured curves would otherwise all be the trainer's default)."""
    import argparse

    curves = _defence_curves_module()
    args = argparse.Namespace(
        epochs=1,
        batch_size=16,
        pgd_steps=1,
        val_pgd_steps=0,
        seed=0,
        verbose=False,
        head_init_epochs=1,
        stages=[1],
        lambda_gr=20.0,
        stage2_epochs=1,
        sensitivity_samples=8,
        sensitivity_epochs=1,
    )
    classifier = fresh_head_classifier(trained_classifier)
    trainer = curves.make_trainer("genaf:sum:random:lamauto:bal0.5:ramp0.8", classifier, args)
    assert isinstance(trainer, GenAFTrainer)
    assert (trainer.eps_warmup_fraction, trainer.lambda_gr, trainer.gr_balance) == (0.8, "auto", 0.5)
    assert (trainer.head_init, trainer.gr_reduction) == ("random", "sum")
    assert curves.make_trainer("genaf:sum:probe:ramp0", classifier, args).eps_warmup_fraction == 0.0
    assert curves.make_trainer("trades:random:decay0.8", classifier, args).lr_decay == 0.8
    assert curves.make_trainer("trades:random", classifier, args).lr_decay == 0.96  # the trainer's default
    longer = argparse.Namespace(**{**vars(args), "epochs": 30})
    assert curves.make_trainer("trades:random:ms27", classifier, longer).lr_milestones == (27,)
    assert curves.make_trainer("mart:random:ms20,25", classifier, longer).lr_milestones == (20, 25)
    assert curves.make_trainer("genaf:sum:random:ms27:st2e10", classifier, longer).stage2_epochs == 10
    assert curves.make_trainer("genaf:sum:random", classifier, args).stage2_epochs == 1  # --stage2-epochs
