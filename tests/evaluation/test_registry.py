"""Every defence of the registry runs in the audit grid: ZePAD (fused model, detector flag rates) and distillation."""

from __future__ import annotations

import numpy as np
import pytest

from art_ssl.evaluation.grid import GridConfig, run_grid
from art_ssl.evaluation.registry import DEFENCES, AttackSettings, DefenceSettings, make_defence_trainer


def test_zepad_and_distillation_run_in_the_grid(tmp_path):
    # distillation: at a few epochs on 64 images the student's embeddings are nearly constant (std 0.002-0.004 across
    # images against 0.37 for the public encoder); its head scores BA 0.203 on 64 test images, not significantly above
    # the majority-class rate, and the grid rightly reports a degenerate chance-level predictor (with its BA)
    fast = DefenceSettings(zepad_head_epochs=1, distill_epochs=5, distill_teacher_epochs=0, distill_warmup_epochs=5)
    config = GridConfig(
        encoders=("simclr_r18",),
        tasks=("fashion-mnist-subset",),
        attacks=("ssp",),
        defences=("zepad", "distillation"),
        eps=(8.0,),
        size=32,
        n_train=64,
        n_test=64,
        surrogate_n=64,
        epochs=1,
        batch_size=32,
        pgd_steps=1,
        attack_settings=AttackSettings(sign_epochs=1, sign_step=1e-3),
        defence_settings=fast,
    )
    frame = run_grid(config, tmp_path / "results.csv", progress=False).set_index("defence")
    assert set(frame.index) == {"zepad", "distillation"} and frame.loc["zepad", "status"] == "ok"
    assert frame.loc["distillation", "status"].startswith("degenerate: chance-level predictor")
    zepad = frame.loc["zepad"]
    assert 0 <= zepad["flag_rate_clean"] <= 1 and 0 <= zepad["flag_rate_attacked"] <= 1
    assert np.isnan(frame.loc["distillation", "flag_rate_clean"])  # no detector
    assert (frame["train_seconds"] > 0).all() and frame["BA"].between(0, 1).all()


def test_defences_that_load_other_encoders_need_them():
    assert {"zepad", "distillation"} <= set(DEFENCES)
    with pytest.raises(ValueError, match="needs `encoder_name` and `load_encoder`"):
        make_defence_trainer("zepad", classifier=None, nb_epochs=1)
