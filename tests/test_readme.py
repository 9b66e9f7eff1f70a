"""The README's examples must run as written, in order, and show what they claim."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


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
    exec(compile(blocks[0], "README.md:quick-start", "exec"), namespace)
    benign, robust_pgd = map(float, capsys.readouterr().out.split()[-2:])
    assert benign > 0.75 and robust_pgd < benign
    exec(compile(blocks[1], "README.md:attacks", "exec"), namespace)
    fooling, robust_pap = map(float, capsys.readouterr().out.split()[-2:])
    assert 0 < fooling <= 1 and robust_pap < benign
    assert namespace["uapepgd"].noise.shape == (1, 1, 64, 64)
    exec(compile(blocks[2], "README.md:defences", "exec"), namespace)
    benign_defended, robust_defended = map(float, capsys.readouterr().out.split()[-2:])
    assert 0.5 < benign_defended <= 1 and 0 < robust_defended <= 1
    assert len(namespace["trainer"].history_) == 1
    exec(compile(blocks[3], "README.md:zepad", "exec"), namespace)
    benign_fused, flagged = map(float, capsys.readouterr().out.split()[-2:])
    assert 0.5 < benign_fused <= 1 and 0 <= flagged <= 1
    exec(compile(blocks[4], "README.md:backdoors", "exec"), namespace)
    asr_before, asr_after = map(float, capsys.readouterr().out.split()[-2:])
    assert asr_before > 0.9 and asr_after < 0.2
