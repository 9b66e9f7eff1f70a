"""``evaluations/defence_tables.py`` turns a grid's rows (one per model and attack) into one row per model: a CSV
holding two seeds keeps both models apart instead of showing the first seed's numbers for both."""

from __future__ import annotations

import pandas as pd

from tests.conftest import evaluation_script


def _rows(seed: int, ba: float, ra: float) -> list[dict]:
    model = {"encoder": "simclr_r18", "task": "digits", "defence": "trades", "seed": seed, "eps_255": 10.0}
    return [
        {**model, "attack": attack, "BA": ba, "RA": ra + i / 100, "train_seconds": 1.0, "status": "ok"}
        for i, attack in enumerate(("advencoder", "ssp"))
    ]


def test_two_seeds_stay_two_rows_and_one_seed_keeps_the_old_layout(monkeypatch):
    tidy = evaluation_script("defence_tables", monkeypatch).tidy
    both = tidy(pd.DataFrame(_rows(0, 0.9, 0.8) + _rows(1, 0.7, 0.6)))
    assert both[["seed", "BA", "RA_advencoder_eps10", "RA_ssp_eps10"]].values.tolist() == [
        [0, 0.9, 0.8, 0.81],
        [1, 0.7, 0.6, 0.61],
    ]
    assert both["RA_mean_DAE"].round(3).tolist() == [0.805, 0.605]
    one = tidy(pd.DataFrame(_rows(0, 0.9, 0.8)))
    assert "seed" not in one.columns and one["BA"].tolist() == [0.9]
