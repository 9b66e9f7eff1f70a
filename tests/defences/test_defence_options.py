"""Issue 16's options: L_gr reductions, the head warm start (LP-FT), Gen-AF's official preset and stage-2
sensitivity start, and ZePAD's BMP encoder and MPAE trainer."""

import copy
import math

import numpy as np
import pytest
import torch

from art_ssl.core.robust_losses import genetic_regularization
from art_ssl.defences.trainer import FineTuningTrainer, GenAFTrainer, MARTTrainer, TRADESTrainer, ZePADTrainer
from art_ssl.defences.trainer.warm_start import fit_head_on_clean
from art_ssl.estimators import encoder_classifier
from art_ssl.models.heads import linear_head
from art_ssl.zoo import list_encoders, load_encoder

FAST = {"nb_epochs": 1, "batch_size": 64, "pgd_steps": 2, "validation_pgd_steps": 0, "verbose": False}


def fresh_head_classifier(trained_classifier, seed=0):
    """The session's trained 28x28 encoder with a new random linear head."""
    torch.manual_seed(seed)
    encoder = copy.deepcopy(trained_classifier.model.encoder)
    head = linear_head(trained_classifier.model.head.in_features, 10)
    return encoder_classifier(encoder, 10, head=head, freeze_encoder=False, input_shape=(1, 28, 28), device_type="cpu")


def accuracy(classifier, x, y):
    return float(np.mean(classifier.predict(x, batch_size=256).argmax(1) == y))


def test_genetic_regularization_reductions_divide_the_official_sum():
    g = torch.Generator().manual_seed(0)
    ref, adj = torch.randn(12, 5, generator=g), torch.randn(12, 5, generator=g)
    y, losses = torch.randint(0, 3, (12,), generator=g), torch.rand(12, generator=g) * 3
    total = float(genetic_regularization(ref, adj, y, losses))
    assert total > 0
    assert math.isclose(
        float(genetic_regularization(ref, adj, y, losses, reduction="batchmean")), total / 12, rel_tol=1e-6
    )
    assert math.isclose(float(genetic_regularization(ref, adj, y, losses, reduction="mean")), total / 144, rel_tol=1e-6)
    with pytest.raises(ValueError, match="`reduction`"):
        genetic_regularization(ref, adj, y, losses, reduction="max")


def test_head_warm_start_fits_the_head_and_leaves_the_encoder_alone(trained_classifier, fmnist28):
    classifier = fresh_head_classifier(trained_classifier)
    before = [p.detach().clone() for p in classifier.model.encoder.parameters()]
    x_val, y_val = fmnist28.x_test[:300], fmnist28.y_test[:300]
    random_head = accuracy(classifier, x_val, y_val)
    trainer = FineTuningTrainer(classifier, **FAST)
    x, y = trainer._check_data(fmnist28.x_train[:512], fmnist28.y_train[:512])
    history = fit_head_on_clean(trainer, x, y, nb_epochs=10, batch_size=64, verbose=False, stage="probe")
    assert list(history["stage"]) == ["probe"] * 10
    for a, b in zip(before, classifier.model.encoder.parameters(), strict=True):
        assert torch.equal(a, b)
    assert accuracy(classifier, x_val, y_val) > max(0.6, random_head + 0.3)


@pytest.mark.parametrize(
    "make",
    [
        lambda c: GenAFTrainer(c, stages=(1,), head_init="probe", head_init_epochs=2, **FAST),
        lambda c: TRADESTrainer(c, head_init="probe", head_init_epochs=2, **FAST),
        lambda c: MARTTrainer(c, head_init="probe", head_init_epochs=2, **FAST),
        lambda c: FineTuningTrainer(c, adversarial=True, head_init="probe", head_init_epochs=2, **FAST),
    ],
)
def test_every_adversarial_trainer_takes_the_warm_start(trained_classifier, fmnist28, make):
    classifier = fresh_head_classifier(trained_classifier)
    trainer = make(classifier)
    assert {"head_init", "head_init_epochs"} <= set(trainer.trainer_params)
    trainer.fit(fmnist28.x_train[:128], fmnist28.y_train[:128])
    assert len(trainer.history_) == 1  # one row per training epoch, as without the warm start
    assert len(trainer.head_init_history_) == 2 and np.isfinite(trainer.head_init_history_["loss"]).all()


def test_warm_start_changes_what_the_adversarial_phase_starts_from(trained_classifier, fmnist28):
    """Same seed, same data: with the warm start the first adversarial epoch starts from a fitted head, so its
    loss is lower than from the random head (a warm start that did nothing would give equal losses)."""
    losses = {}
    for head_init in ("random", "probe"):
        trainer = TRADESTrainer(
            fresh_head_classifier(trained_classifier), head_init=head_init, head_init_epochs=5, **FAST
        )
        trainer.fit(fmnist28.x_train[:256], fmnist28.y_train[:256])
        assert (trainer.head_init_history_ is None) == (head_init == "random")
        losses[head_init] = float(trainer.history_["loss"].iloc[0])
    assert losses["probe"] < losses["random"] - 0.2, losses


def test_official_preset_is_the_official_recipe(trained_classifier):
    classifier = fresh_head_classifier(trained_classifier)
    official = GenAFTrainer.official(classifier, nb_epochs=3)
    assert (official.gr_reduction, official.head_init, official.sensitivity_start) == ("sum", "random", "zero")
    assert official.lambda_gr == 20.0 and official.nb_epochs == 3
    assert official.eps_warmup_fraction == 0.0
    recommended = GenAFTrainer(classifier)
    assert (recommended.head_init, recommended.lambda_gr, recommended.eps_warmup_fraction) == ("random", "auto", 0.8)


def test_sensitivity_start_zero_allows_negative_scores_and_original_clips_them(trained_classifier, fmnist28):
    """The official running maximum starts at 0: score = max loss reached - original loss, negative when the
    ascent only lowers the loss; starting at the original loss gives exactly max(0, that score)."""
    classifier = fresh_head_classifier(trained_classifier)
    x = torch.from_numpy(fmnist28.x_train[:128])
    y = torch.from_numpy(fmnist28.y_train[:128]).long()
    scores = {}
    for start in ("zero", "original"):
        trainer = GenAFTrainer(
            classifier,
            sensitivity_start=start,
            sensitivity_epochs=2,
            sensitivity_lr=10.0,
            sensitivity_batch_size=64,
            **FAST,
        )
        trainer._generator = torch.Generator().manual_seed(0)
        scores[start] = trainer.layer_sensitivity(x, y)
    for name, value in scores["zero"].items():
        assert math.isclose(scores["original"][name], max(0.0, value), abs_tol=1e-6), name


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda c: GenAFTrainer(c, gr_reduction="median"), ValueError, "`gr_reduction`"),
        (lambda c: GenAFTrainer(c, head_init="zeros"), ValueError, "`head_init`"),
        (lambda c: GenAFTrainer(c, head_init_epochs=0), ValueError, "`head_init_epochs`"),
        (lambda c: GenAFTrainer(c, sensitivity_start="max"), ValueError, "`sensitivity_start`"),
        (lambda c: TRADESTrainer(c, head_init="linear"), ValueError, "`head_init`"),
        (lambda c: MARTTrainer(c, head_init_epochs=-1), ValueError, "`head_init_epochs`"),
        (lambda c: FineTuningTrainer(c, head_init=None), ValueError, "`head_init`"),
    ],
)
def test_bad_options(trained_classifier, make, error, match):
    with pytest.raises(error, match=match):
        make(fresh_head_classifier(trained_classifier))


# ---------------------------------------------------------------------------------------------------- ZePAD
@pytest.fixture(scope="module")
def zoo_victim():
    if not {"simclr_r18", "barlow_twins_r18", "moco_r18"} <= set(list_encoders()):
        pytest.skip("needs the zoo's simclr_r18, barlow_twins_r18 and moco_r18")
    return load_encoder("simclr_r18", "cpu"), load_encoder("barlow_twins_r18", "cpu")


def zepad_fit(victim_encoder, auxiliary, x, y, **kwargs):
    victim = encoder_classifier(victim_encoder, 10, device_type="cpu")
    trainer = ZePADTrainer(victim, auxiliary, head_epochs=1, batch_size=32, verbose=False, **kwargs)
    trainer.fit(x, y)
    return trainer


def test_zepad_bmp_is_another_clean_encoder_by_default(zoo_victim, fmnist28):
    victim, auxiliary = zoo_victim
    from art_ssl.data import load_task

    task = load_task("fashion_mnist_subset", size=64, n_train=40, n_test=10)
    mpae = [copy.deepcopy(victim.model), copy.deepcopy(auxiliary.model)]
    trainer = zepad_fit(victim, auxiliary, task.x_train, task.y_train, mpae_encoders=mpae)
    assert trainer.bmp_encoder_ == "moco_r18"  # neither the victim's method (SimCLR) nor the auxiliary's
    bmp = trainer.get_classifier().model.bmp.encoder
    moco = load_encoder("moco_r18", "cpu").model
    assert all(torch.equal(a, b) for a, b in zip(bmp.state_dict().values(), moco.state_dict().values(), strict=True))
    with pytest.warns(UserWarning, match="victim's own clean encoder"):
        old = zepad_fit(victim, auxiliary, task.x_train, task.y_train, mpae_encoders=mpae, bmp_encoder="victim")
    assert old.bmp_encoder_ == "victim"
    with pytest.warns(UserWarning, match="victim's own clean encoder"):
        zepad_fit(
            victim, auxiliary, task.x_train, task.y_train, mpae_encoders=mpae, bmp_encoder=copy.deepcopy(victim.model)
        )


def test_zepad_mpae_trainer_is_selectable(zoo_victim):
    victim, auxiliary = zoo_victim
    from art_ssl.data import load_task

    task = load_task("fashion_mnist_subset", size=64, n_train=32, n_test=10)
    trainer = zepad_fit(
        victim,
        auxiliary,
        task.x_train,
        task.y_train,
        use_auxiliary=False,
        mpae_trainer="trades",
        aft_epochs=1,
        pgd_steps=1,
        mpae_options={"head_init": "probe", "head_init_epochs": 1},
        bmp_encoder="moco_r18",
    )
    assert len(trainer.histories_["aft_0"]) == 1
    assert not torch.equal(trainer.mpae_encoders_[0].stem[0].weight, victim.model.stem[0].weight)


def test_zepad_finetuned_heads_keep_the_fine_tuning_model(zoo_victim):
    victim, auxiliary = zoo_victim
    from art_ssl.data import load_task

    task = load_task("fashion_mnist_subset", size=64, n_train=32, n_test=10)
    common = {"use_auxiliary": False, "mpae_trainer": "trades", "aft_epochs": 1, "pgd_steps": 1}
    trainer = zepad_fit(victim, auxiliary, task.x_train, task.y_train, mpae_heads="finetuned", **common)
    branch = trainer.get_classifier().model.mpae[0]
    assert branch.encoder is trainer.mpae_encoders_[0]  # the fine-tuning's own model, not a copy with a new head
    assert set(trainer.histories_) == {"aft_0", "head_bmp"}  # no clean head trained for the MPAE branch
    clean = zepad_fit(victim, auxiliary, task.x_train, task.y_train, **common)
    assert set(clean.histories_) == {"aft_0", "head_mpae_0", "head_bmp"}
    assert clean.get_classifier().model.mpae[0].encoder is not clean.mpae_encoders_[0]
    # the fine-tuning's own model is kept beside the clean-head branch (zepad_eval's "finetuned" ablation row)
    assert [m.encoder for m in clean.finetuned_models_] == clean.mpae_encoders_
    assert clean.finetuned_models_[0].head is not clean.get_classifier().model.mpae[0].head


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mpae_heads": "adversarial"}, ValueError, "`mpae_heads` must be one of"),
        ({"mpae_heads": "finetuned", "mpae_encoders": [torch.nn.Identity()] * 2}, ValueError, "mpae_heads='clean'"),
        ({"mpae_trainer": "fgsm"}, ValueError, "`mpae_trainer`"),
        ({"mpae_options": [("gr_reduction", "sum")]}, TypeError, "`mpae_options`"),
        ({"bmp_encoder": "resnet"}, ValueError, "`bmp_encoder`"),
        ({"bmp_encoder": 3}, TypeError, "`bmp_encoder`"),
        ({"lambda_gr": "balanced"}, ValueError, "`lambda_gr` must be a finite number >= 0 or 'auto'"),
        ({"lambda_gr": -1.0}, ValueError, "`lambda_gr`"),
    ],
)
def test_zepad_bad_options(trained_classifier, kwargs, error, match):
    with pytest.raises(error, match=match):
        ZePADTrainer(fresh_head_classifier(trained_classifier), torch.nn.Identity(), **kwargs)


def test_zepad_lambda_auto_reaches_the_genaf_fine_tuning(trained_classifier):
    trainer = ZePADTrainer(fresh_head_classifier(trained_classifier), torch.nn.Identity(), lambda_gr="auto")
    clf = fresh_head_classifier(trained_classifier)
    assert trainer._mpae_fine_tuner(clf, 1, {"verbose": False}).lambda_gr == "auto"


def test_zepad_official_preset_uses_the_official_genaf_and_a_bmp_other_than_the_victim(trained_classifier):
    trainer = ZePADTrainer.official(fresh_head_classifier(trained_classifier), torch.nn.Identity(), aft_epochs=2)
    assert trainer.mpae_trainer == "genaf" and trainer.aft_epochs == 2 and trainer.bmp_encoder == "auto"
    official_genaf = {"gr_reduction": "sum", "head_init": "random", "lambda_gr": 20.0, "eps_warmup_fraction": 0.0}
    assert trainer.mpae_options == official_genaf and trainer.lambda_gr == 20.0
    clf = fresh_head_classifier(trained_classifier)
    assert trainer._mpae_fine_tuner(clf, 1, {"verbose": False}).lambda_gr == 20.0  # the default is "auto"
    assert ZePADTrainer(fresh_head_classifier(trained_classifier), torch.nn.Identity()).lambda_gr == "auto"


def test_eps_warmup_scales_the_training_pgd_and_not_the_validation(trained_classifier, fmnist28, monkeypatch):
    from art_ssl.defences.trainer import EncoderHeadTrainer
    from art_ssl.defences.trainer.warm_start import eps_scale

    assert [eps_scale(e, 2) for e in (1, 2, 3, 4)] == [1 / 3, 2 / 3, 1.0, 1.0] and eps_scale(1, 0) == 1.0
    trainer = FineTuningTrainer(
        fresh_head_classifier(trained_classifier),
        adversarial=True,
        eps=0.1,
        step_size=0.05,
        pgd_steps=3,
        eps_warmup_epochs=1,
        eps_warmup_fraction=0.0,  # the per-epoch warm-up alone (the step-by-step one: test_eps_warmup.py)
        verbose=False,
    )
    x, y = trainer._check_data(fmnist28.x_train[:32], fmnist28.y_train[:32])
    trainer._before_step(0, 1, 3, {})
    assert float((trainer._ce_pgd(x, y) - x).abs().max()) <= 0.05 + 1e-6
    seen, original = [], EncoderHeadTrainer._pgd

    def recording(self, loss_fn, x, eps=None, **kwargs):  # the budget the base PGD is asked for
        seen.append(self.eps if eps is None else eps)
        return original(self, loss_fn, x, eps=eps, **kwargs)

    monkeypatch.setattr(EncoderHeadTrainer, "_pgd", recording)
    trainer._validate(x, y, 32)
    assert seen and all(e == 0.1 for e in seen) and trainer._eps_scale == 0.5
    with pytest.raises(ValueError, match="`eps_warmup_epochs`"):
        TRADESTrainer(fresh_head_classifier(trained_classifier), eps_warmup_epochs=-1)


def test_pgd_at_clean_weight_mixes_clean_and_adversarial_cross_entropy(trained_classifier, fmnist28):
    import torch.nn.functional as F

    trainer = FineTuningTrainer(
        fresh_head_classifier(trained_classifier), adversarial=True, clean_weight=0.25, pgd_steps=2, verbose=False
    )
    x, y = trainer._check_data(fmnist28.x_train[:16], fmnist28.y_train[:16])
    trainer.model.eval()
    trainer._generator = torch.Generator().manual_seed(0)
    got = float(trainer._batch_loss(x, y))
    trainer._generator = torch.Generator().manual_seed(0)
    x_adv = trainer._ce_pgd(x, y)
    with torch.no_grad():
        clean, adv = F.cross_entropy(trainer._logits(x), y), F.cross_entropy(trainer._logits(x_adv), y)
    assert math.isclose(got, float(0.25 * clean + 0.75 * adv), rel_tol=1e-5) and float(adv) > float(clean)
    with pytest.raises(ValueError, match="`clean_weight`"):
        FineTuningTrainer(fresh_head_classifier(trained_classifier), clean_weight=1.0)


def test_genaf_auto_lambda_balances_the_two_gradients_at_the_start(trained_classifier, fmnist28):
    classifier = fresh_head_classifier(trained_classifier)
    trainer = GenAFTrainer(classifier, stages=(1,), lambda_gr="auto", gr_balance=0.5, head_init="random", **FAST)
    x, y = trainer._check_data(fmnist28.x_train[:256], fmnist28.y_train[:256])
    state = copy.deepcopy(classifier.model.state_dict())
    lam = trainer.balanced_lambda(x, y, 64)
    for key, value in classifier.model.state_dict().items():  # BatchNorm statistics restored: nothing changed
        assert torch.equal(value, state[key]), key
    # recompute both gradients by hand on the same seeded batch: lam * |grad L_gr| == 0.5 * |grad CE|
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:64]
    classifier.model.train()
    ce, l_gr = trainer._stage1_terms(x[pick], y[pick])
    params = [p for p in classifier.model.parameters() if p.requires_grad]
    norm = lambda t: float(torch.sqrt(sum((g**2).sum() for g in torch.autograd.grad(t, params, retain_graph=True))))
    assert lam * norm(l_gr) == pytest.approx(0.5 * norm(ce), rel=0.05)
    with torch.no_grad():
        classifier.model.load_state_dict(state)
    assert 0 < lam < 20  # the summed L_gr dwarfs CE: the balanced weight is far below the official 20
    trainer.fit(fmnist28.x_train[:256], fmnist28.y_train[:256])
    assert trainer.lambda_gr_ == pytest.approx(lam, rel=1e-6)  # the same batch and weights give the same weight
    with pytest.raises(ValueError, match="`lambda_gr` must be a finite number >= 0 or 'auto'"):
        GenAFTrainer(classifier, lambda_gr="balanced")
    with pytest.raises(ValueError, match="`gr_balance`"):
        GenAFTrainer(classifier, lambda_gr="auto", gr_balance=0)
