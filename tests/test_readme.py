"""The README's examples must run as written, in order, and show what they claim."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _claimed(block: str) -> list[str]:
    """The numbers a block's comment says its last ``print`` shows (``print(a, b)  # 1.0 0.1133``), as written."""
    claims = re.findall(r"^print\(.*?#\s*((?:-?\d+(?:\.\d+)?\s*)+)$", block, flags=re.M)
    return claims[-1].split() if claims else []


def _check_claims(block: str, printed: list[str]) -> None:
    """Each number in the comment equals the printed one at the comment's precision (a block whose comment states no
    exact number, e.g. "about 0.1", is checked by the test's own bounds instead)."""
    claims = _claimed(block)
    if not claims:
        return
    for claim, value in zip(claims, printed[-len(claims) :], strict=True):
        digits = len(claim.split(".")[1]) if "." in claim else 0
        assert round(float(value), digits) == float(claim), f"README comment says {claim}, the code prints {value}"


def test_readme_comments_are_checked():
    assert _claimed("x = 1\nprint(a, b)           # 1.0 0.1133\n") == ["1.0", "0.1133"]
    with pytest.raises(AssertionError, match="says 0.07, the code prints 0.11333"):
        _check_claims("print(a, b)  # 1.0 0.07", ["1.0", "0.11333"])


def test_readme_audit_example_runs(tmp_path, monkeypatch, capsys):
    (block,) = [b for b in _blocks() if "GridConfig" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md:audit", "exec"), namespace)
    frame = namespace["frame"]
    assert list(frame.attack) == ["ssp", "pgd"] and (frame.RA < frame.BA).all()
    assert (tmp_path / "my_audit" / "report.html").exists() and "pgd" in capsys.readouterr().out


def test_readme_examples_run(capsys):
    blocks = [b for b in _blocks() if "GridConfig" not in b]
    assert len(blocks) >= 2, "README lost its python examples"
    namespace: dict = {}

    def run(index: int, name: str) -> list[str]:
        """Run one block; its comments' numbers must be what it prints."""
        exec(compile(blocks[index], f"README.md:{name}", "exec"), namespace)
        printed = capsys.readouterr().out.split()
        _check_claims(blocks[index], printed)
        return printed

    benign, robust_pgd = map(float, run(0, "quick-start")[-2:])
    assert benign > 0.75 and robust_pgd < benign
    fooling, robust_pap = map(float, run(1, "attacks")[-2:])
    assert 0 < fooling <= 1 and robust_pap < benign
    assert namespace["uapepgd"].noise.shape == (1, 1, 64, 64)
    benign_defended, robust_defended = map(float, run(2, "defences")[-2:])
    assert 0.5 < benign_defended <= 1 and 0 < robust_defended <= 1
    assert len(namespace["trainer"].history_) == 1
    benign_fused, flagged = map(float, run(3, "zepad")[-2:])
    assert 0.5 < benign_fused <= 1 and 0 <= flagged <= 1
    asr_before, asr_after = map(float, run(4, "backdoors")[-2:])
    assert asr_before > 0.9 and asr_after < 0.2
