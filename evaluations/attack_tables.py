"""
Markdown tables from the attack presets' CSVs (``run_preset.py attacks_*``; rows of the audit grid), written next to
them:

    python evaluations/attack_tables.py

- ``attacks_64.md``: BA and RA per encoder, downstream task and attack at eps 10/255, 64x64;
- ``attacks_64_curve.md``: RA against eps (4, 8, 10, 16 /255) for the curve's encoder;
- ``attacks_resolution.md``: the same SimCLR recipe at 28x28 (native) and 64x64, eps 10/255 and 16/255.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ["advencoder", "pap_base", "pap_ugs", "pap_fuse", "ssp", "uapepgd", "art_uap"]


def read_rows(path: Path) -> pd.DataFrame:
    """A results CSV with the tasks spelt as the tables spell them (``fashion_mnist``) and only scored rows (the
    grid marks degenerate cells in ``status``; a table never shows them as numbers)."""
    frame = pd.read_csv(path)
    if "status" in frame.columns:
        frame = frame[frame["status"].astype(str).eq("ok")]
    return frame.assign(task=frame["task"].str.replace("-", "_"))


def ra_table(frame: pd.DataFrame, index: list[str], columns: str) -> pd.DataFrame:
    ba = frame.groupby(index)["BA"].first().rename("BA")
    ra = frame.pivot_table(index=index, columns=columns, values="RA", aggfunc="first")
    if columns == "attack":
        ra = ra[[a for a in ORDER if a in ra.columns]]
    return pd.concat([ba, ra], axis=1).reset_index()


def results_dir(description: str) -> Path:
    """``--results-dir``: where a table script reads its CSVs and writes its markdown (default evaluations/results)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default=str(RESULTS), help="folder of the CSVs (default: %(default)s)")
    return Path(parser.parse_args().results_dir)


def write(path: Path, title: str, table: pd.DataFrame) -> None:
    text = f"{title}\n\n{table.to_markdown(index=False, floatfmt='.3f')}\n"
    path.write_text(text)
    print(text)


def main() -> None:
    results = results_dir(__doc__)
    main_csv = results / "attacks_64.csv"
    frame = read_rows(main_csv)
    eps10 = frame[frame.eps_255 == 10]
    write(
        results / "attacks_64.md",
        "Benign accuracy (BA) and robust accuracy (RA) of the undefended downstream models (the papers' "
        "512-512 MLP head trained on the frozen encoder, all training images) under universal perturbations "
        "crafted on the public encoder alone (5,000 unlabelled Fashion-MNIST training images), eps 10/255, 64x64, "
        "clipped to [0, 1]. Test sets: Fashion-MNIST 10,000, digits 540. Command: "
        "`python evaluations/run_preset.py attacks_64`",
        ra_table(eps10, ["encoder", "task"], "attack"),
    )
    times = eps10.groupby("attack")["attack_seconds"].median().reindex(ORDER).dropna()
    write(
        results / "attacks_64_seconds.md",
        "Median seconds to learn each perturbation (5,000 images, CPU, 1 thread on 2 cores shared with other runs: "
        "compare within the table only), over the zoo encoders.",
        times.rename("seconds").reset_index(),
    )
    curve_csv = results / "attacks_64_curve.csv"
    if curve_csv.exists():
        curve = read_rows(curve_csv)
        curve = pd.concat([curve, eps10[eps10.encoder.isin(curve.encoder.unique())]])
        table = curve.pivot_table(index=["encoder", "task", "attack"], columns="eps_255", values="RA")
        table.columns = [f"RA eps {c:g}/255" for c in table.columns]
        table = table.reset_index()
        table["attack"] = pd.Categorical(table["attack"], ORDER)
        write(
            results / "attacks_64_curve.md",
            "RA against eps, 64x64. Command: `python evaluations/run_preset.py attacks_64_curve` (eps 10 from the "
            "main table)",
            table.sort_values(["task", "attack"]),
        )
    low_csv = results / "attacks_28.csv"
    if low_csv.exists():
        low = read_rows(low_csv)
        high = pd.concat([frame] + ([read_rows(curve_csv)] if curve_csv.exists() else []))
        high = high[(high.encoder == "simclr_r18") & high.eps_255.isin(low.eps_255.unique())]
        both = pd.concat([low, high])
        both["resolution"] = both["size"].map(lambda s: f"{s}x{s}")
        write(
            results / "attacks_resolution.md",
            "The resolution finding (DESIGN §6) re-measured: the same SimCLR recipe and "
            "architecture trained at 28x28 (native Fashion-MNIST) and at 64x64, same attacks. "
            "Commands: `python -m art_ssl pretrain --method simclr --data fashion_mnist --size 28 --epochs 10 "
            "--seed 0 --device cpu --amp off --out evaluations/checkpoints/simclr_r18_28px.safetensors`, then "
            "`python evaluations/run_preset.py attacks_28`",
            ra_table(both, ["resolution", "eps_255", "task"], "attack"),
        )


if __name__ == "__main__":
    main()
