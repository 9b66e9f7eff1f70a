"""The audit report: the verdict's rule, the gradient-masking checks, warnings, and what a reader sees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from art_ssl.evaluation.registry import DefenceSettings, training_warnings, zepad_partners
from art_ssl.evaluation.report import caps, display, masking_checks, summary, verdict, write_report

# RA per (defence, attack, eps): ssp is universal, pgd white-box.
RESULTS = {
    "none": (0.80, {("ssp", 4): 0.50, ("ssp", 10): 0.20, ("pgd", 4): 0.01, ("pgd", 10): 0.00}),
    "finetune": (0.79, {("ssp", 4): 0.45, ("ssp", 10): 0.25, ("pgd", 4): 0.00, ("pgd", 10): 0.00}),
    "trades": (0.75, {("ssp", 4): 0.74, ("ssp", 10): 0.70, ("pgd", 4): 0.30, ("pgd", 10): 0.10}),
}


def _frame(results=RESULTS, encoder="simclr_r18", task="digits", n_train=1257) -> pd.DataFrame:
    rows = []
    for defence, (ba, cells) in results.items():
        for (attack, eps), ra in cells.items():
            rows.append(
                {
                    "encoder": encoder,
                    "task": task,
                    "defence": defence,
                    "attack": attack,
                    "eps_255": float(eps),
                    "seed": 0,
                    "BA": ba,
                    "RA": ra,
                    "ASR": np.nan,
                    "n_train": n_train,
                    "n_test": 540,
                    "status": "ok",
                }
            )
    return pd.DataFrame(rows)


def _backdoor_rows(asr: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "encoder": "simclr_r18",
                "task": "digits",
                "defence": d,
                "attack": "badencoder",
                "eps_255": 0.0,
                "seed": 0,
                "BA": RESULTS[d][0] if d in RESULTS else 0.78,
                "RA": np.nan,
                "ASR": a,
                "target": 9.0,
                "n_train": 1257,
                "n_test": 540,
                "status": "ok",
            }
            for d, a in asr.items()
        ]
    )


def test_verdict_names_strongest_dae_and_best_defence_by_the_rule():
    text = verdict(_frame())
    assert "strongest DAE is ssp at 10/255" in text and "RA to 0.20 (-60.0 points)" in text
    # BA cost <= 2 points: finetune (-1 point, +5 points of RA); trades costs 5 points
    assert "**finetune**" in text and "+5.0 points against `none`" in text
    wide = verdict(_frame(), max_ba_cost=0.06)
    assert "**trades**" in wide and "+50.0 points against `none`" in wide
    assert "white-box attacks still leave RA 0.10" in wide


def test_verdict_says_when_no_defence_fits_the_rule():
    results = {k: v for k, v in RESULTS.items() if k != "finetune"}
    text = verdict(_frame(results))
    assert "No audited defence raises mean DAE RA within the rule" in text and "**trades**" in text


def test_verdict_reports_backdoor_and_what_removes_it():
    frame = pd.concat([_frame(), _backdoor_rows({"none": 1.0, "finetune": 0.8, "trades": 0.03})], ignore_index=True)
    text = verdict(frame)
    assert "ASR 1.00" in text and "removed (ASR <= 0.1) by trades (ASR 0.03" in text
    kept = verdict(pd.concat([_frame(), _backdoor_rows({"none": 1.0, "finetune": 0.8})], ignore_index=True))
    assert "no audited defence removes it (lowest: finetune, ASR 0.80); try super_finetune or distillation" in kept


def test_summary_separates_universal_and_whitebox_with_deltas():
    table = summary(_frame()).set_index("defence")
    assert table.loc["trades", "DAE_RA_mean"] == pytest.approx(0.70)  # the largest budget only
    assert table.loc["trades", "whitebox_RA"] == pytest.approx(0.10)
    assert table.loc["trades", "dBA"] == pytest.approx(-0.05) and table.loc["trades", "dRA_DAE"] == pytest.approx(0.5)
    assert table.loc["none", "dRA_whitebox"] == 0


def test_masking_checks_name_their_cells():
    assert masking_checks(_frame()) == []
    masked = {**RESULTS, "none": (0.80, {("ssp", 4): 0.50, ("ssp", 10): 0.20, ("pgd", 4): 0.30, ("pgd", 10): 0.45})}
    flags = masking_checks(_frame(masked))
    assert any("none at 10/255: white-box pgd leaves RA 0.45, above the universal ssp's 0.20" in f for f in flags)
    assert any("none / pgd: RA 0.45 at 10/255 is above 0.30 at 4/255" in f for f in flags)
    assert any("an undefended model keeps white-box RA 0.45 at 10/255" in f for f in flags)


def test_masking_check_compares_a_backdoored_encoder_with_its_clean_base():
    clean = _frame()
    backdoored = _frame(encoder="simclr_r18_badencoder")
    backdoored.loc[backdoored["attack"].eq("pgd"), "RA"] = 0.4
    flags = masking_checks(pd.concat([clean, backdoored], ignore_index=True))
    assert any(
        "simclr_r18_badencoder / digits / none / pgd at 10/255: the backdoored encoder keeps white-box RA 0.40 "
        "against 0.00 for the clean simclr_r18" in f
        for f in flags
    )


def test_display_has_no_nan_and_whole_numbers():
    shown = display(_backdoor_rows({"none": 1.0, "trades": np.nan}).assign(dBA=[0.0, -0.031]))
    assert "nan" not in shown.to_string().lower() and set(shown["target"]) == {"9"}
    assert list(shown["ASR"]) == ["1.000", "–"] and list(shown["dBA"]) == ["+0.0", "-3.1"]


def test_training_budgets_warn_below_convergence():
    assert training_warnings("trades", 10, 4000, 256) == []  # 160 steps
    (text,) = training_warnings("trades", 3, 4000, 256)
    assert "trades trained 48 steps" in text and ">= 150" in text
    assert training_warnings("none", 1, 10, 256) == []
    assert any("distill_epochs = 2" in t for t in training_warnings("distillation", 1, 100, 256, {"distill_epochs": 2}))


def test_caps_name_datasets_smaller_than_requested():
    assert caps(_frame(), {"n_train": 2000, "n_test": 500}) == [
        "digits: 1,257 train images used of 2,000 requested (the dataset has no more)"
    ]


def test_defence_settings_are_checked():
    with pytest.raises(ValueError, match="distill_fraction"):
        DefenceSettings(distill_fraction=0)
    with pytest.raises(ValueError, match="zepad_head_epochs"):
        DefenceSettings(zepad_head_epochs=0)
    with pytest.raises(TypeError, match="zepad_auxiliary"):
        DefenceSettings(zepad_auxiliary=3)


def test_zepad_partners_are_other_clean_zoo_encoders():
    auxiliary, bmp = zepad_partners("simclr_r18")
    assert auxiliary == "barlow_twins_r18" and bmp not in ("simclr_r18", auxiliary)
    # a backdoored victim: neither partner is it or the encoder it was made from
    assert not {"simclr_r18", "simclr_r18_badencoder"} & set(zepad_partners("simclr_r18_badencoder"))
    assert zepad_partners("simclr_r18", auxiliary="moco_r18", bmp="simclr_r18_s1") == ("moco_r18", "simclr_r18_s1")


def test_write_report_is_verdict_first_and_readable(tmp_path):
    frame = pd.concat([_frame(), _backdoor_rows({"none": 1.0, "trades": 0.03})], ignore_index=True)
    config = {
        "encoders": ("simclr_r18",),
        "epochs": 2,
        "batch_size": 256,
        "n_train": 2000,
        "n_test": None,
        "defence_settings": {},
    }
    paths = write_report(frame, tmp_path, config, run={"started": "2026-11-30 15:00", "seconds": 390.0})
    md = paths["report.md"].read_text()
    flat = " ".join(md.split())  # markdown tables pad their cells
    assert md.index("## Verdict") < md.index("## Defences against `none`") < md.index("## All results")
    for text in (
        "Warning: under-trained defences",
        "Universal (DAE) attacks: RA",
        "White-box attacks: RA",
        "**DAE**:",
        "**trades**: TRADES",
        "| date (UTC) | 2026-11-30 15:00",
        "| duration | 6.5 min",
        "1,257 train images used of 2,000 requested",
    ):
        assert text in flat, text
    page = paths["report.html"].read_text()
    assert "<img src='ba_ra.png'" in page and "class='verdict'" in page
    for text in (md, page):
        assert "nan" not in text.lower() and "9.000" not in text
    assert (tmp_path / "asr.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="max_ba_cost"):
        write_report(frame, tmp_path, max_ba_cost=5)
