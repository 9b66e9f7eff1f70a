"""The audit report in a real browser (headless Chromium): skipped where Chromium is not installed
(``make report-check`` installs it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from art_ssl.evaluation.report import write_report
from tests.evaluation.test_report import _frame

SCRIPT = Path(__file__).resolve().parents[2] / "evaluations" / "report_check.py"
_spec = importlib.util.spec_from_file_location("report_check", SCRIPT)
report_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_check)
pytestmark = pytest.mark.skipif(report_check.find_browser() is None, reason="Chromium is not installed")


def test_report_renders_cleanly_and_breakage_is_caught(tmp_path):
    write_report(_frame(), tmp_path, {"epochs": 3, "batch_size": 256, "n_train": 1257})
    result = report_check.check_report(tmp_path, screenshot=tmp_path / "shot.png")
    assert result["problems"] == [] and result["images"] >= 2 and result["tables"] >= 4
    assert (tmp_path / "shot.png").read_bytes()[:4] == b"\x89PNG"
    # a missing figure, a table wider than the window and a script error are each reported
    (tmp_path / "ba_ra.png").unlink()
    wide = pd.DataFrame([{f"column_{i}_with_a_long_name": "value" for i in range(40)}]).to_html()
    page = (tmp_path / "report.html").read_text().replace("</body>", wide + "<script>undefinedCall()</script></body>")
    (tmp_path / "report.html").write_text(page)
    problems = " | ".join(report_check.check_report(tmp_path)["problems"])
    assert "broken image: ba_ra.png" in problems and "overflows" in problems and "undefinedCall" in problems
    assert report_check.main([str(tmp_path)]) == 1
