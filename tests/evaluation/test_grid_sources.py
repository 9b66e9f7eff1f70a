"""Where the grid's DAEs come from (standard, transfer, adaptive), per-task epochs and per-attack budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_ssl.evaluation import defended_encoder
from art_ssl.evaluation.grid import GridConfig, run_grid
from art_ssl.evaluation.registry import AttackSettings, dae_source
from art_ssl.evaluation.sources import load_encoder_spec

SMALL = {
    "encoders": ("simclr_r18",),
    "tasks": ("fashion-mnist-subset", "digits"),
    "attacks": ("ssp", "transfer:ssp", "adaptive:ssp", "pgd"),
    "defences": ("none", "finetune"),
    "eps": (8.0,),
    "size": 32,
    "n_train": 200,
    "n_test": 150,
    "epochs": 1,
    "task_epochs": ("digits=2",),
    "attack_eps": {"pgd": 2},
    "whitebox_n": 50,
    "surrogate_n": 200,
    "attack_settings": AttackSettings(sign_epochs=2, sign_step=1e-3),
}


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sources") / "results.csv"
    config = GridConfig(**SMALL)
    return config, out, run_grid(config, out, progress=False)


def test_dae_sources_budgets_and_epochs(sources_run):
    config, out, frame = sources_run
    assert (frame.status == "ok").all() and len(frame) == 2 * 2 * 4
    source = config.transfer_source("simclr_r18")
    assert source != "simclr_r18"
    by_attack = frame.groupby("attack")["dae_encoder"].agg(set).to_dict()
    assert by_attack["ssp"] == {"simclr_r18"} and by_attack["transfer:ssp"] == {source}
    assert by_attack["adaptive:ssp"] == {"defended"}
    # the transfer perturbation was learnt (and cached) on the other encoder, under its own name
    assert len(list((out.parent / "perturbations").glob(f"{source}_ssp_eps8_s0_p*.npz"))) == 1
    assert set(frame[frame.attack == "pgd"].eps_255) == {2.0}
    assert set(frame[frame.attack != "pgd"].eps_255) == {8.0}
    epochs = frame.drop_duplicates(["task", "defence"]).set_index(["task", "defence"])["epochs"]
    assert epochs[("digits", "finetune")] == 2 and epochs[("fashion-mnist-subset", "finetune")] == 1
    assert epochs[("digits", "none")] == 10  # a head on the frozen encoder always gets >= 10 epochs


def test_adaptive_dae_on_a_frozen_encoder_is_the_standard_one(sources_run):
    # with no defence the encoder is the public one: the attacker who knows "the defence" crafts the same DAE
    _, _, frame = sources_run
    none = frame[frame.defence == "none"].set_index(["task", "attack"])["RA"]
    for task in ("fashion-mnist-subset", "digits"):
        assert none[(task, "adaptive:ssp")] == none[(task, "ssp")]
    # the fine-tuned encoder is another encoder: its adaptive DAE is crafted on it, not read from the cache
    tuned = frame[frame.defence == "finetune"].set_index(["task", "attack"])
    assert tuned.loc[("digits", "adaptive:ssp"), "perturbation_key"] != tuned.loc[("digits", "ssp"), "perturbation_key"]


def test_defended_encoder_shares_the_trained_module_and_refuses_fused_models():
    public = load_encoder_spec("simclr_r18", 32)
    from art_ssl.evaluation import build_victim

    victim = build_victim(public, 10, seed=0)
    encoder = defended_encoder(victim, public)
    assert encoder.model is victim.model.encoder and encoder.preprocessing is public.preprocessing
    x = np.random.default_rng(0).random((4, *public.input_shape), dtype=np.float32)
    np.testing.assert_allclose(encoder.predict(x), public.predict(x), atol=1e-5)  # untrained copy
    fused = PyTorchClassifier(torch.nn.Flatten(), torch.nn.CrossEntropyLoss(), (1, 2, 2), 4)
    with pytest.raises(ValueError, match="adaptive DAEs need a downstream model with one `encoder`"):
        defended_encoder(fused, public)


def test_dae_source_names():
    assert dae_source("ssp") == ("standard", "ssp")
    assert dae_source("transfer:pap_ugs") == ("transfer", "pap_ugs")
    assert dae_source("adaptive:advencoder") == ("adaptive", "advencoder")
    with pytest.raises(ValueError, match="'transfer:' takes a universal attack"):
        dae_source("transfer:pgd")
    with pytest.raises(ValueError, match="is not a universal attack"):
        dae_source("pgd")
