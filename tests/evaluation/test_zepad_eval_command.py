"""``evaluations/zepad_eval.py`` names the command that made each table in its caption: the options that change the
numbers stay, the locations (where the table is written, where the DAEs are cached) do not."""

from __future__ import annotations

from tests.conftest import evaluation_script


def test_caption_command_keeps_the_settings_and_drops_the_locations(monkeypatch):
    argv = ["--victim", "barlow_twins_r18", "--cache", "/tmp/c", "--aft-epochs", "10", "--out-dir=/tmp/o"]
    argv += ["--out-dir", "/tmp/o2", "--cache=/tmp/c2", "--mpae-heads", "finetuned"]
    assert evaluation_script("zepad_eval", monkeypatch).command_line(argv) == (
        "python evaluations/zepad_eval.py --victim barlow_twins_r18 --aft-epochs 10 --mpae-heads finetuned"
    )


def test_another_victim_writes_its_own_tables(monkeypatch, tmp_path):
    table_path = evaluation_script("zepad_eval", monkeypatch).table_path
    assert table_path(tmp_path, "", "simclr_r18") == tmp_path / "zepad_64.csv"
    assert table_path(tmp_path, "detection", "barlow_twins_r18") == tmp_path / "zepad_detection_barlow_twins_r18_64.csv"
    assert table_path(tmp_path, "", "ckpt/my.encoder.safetensors") == tmp_path / "zepad_my_encoder_64.csv"
