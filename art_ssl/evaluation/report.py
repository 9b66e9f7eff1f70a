"""
The audit report: ``report.md`` and ``report.html`` with the results table, a summary per encoder and task, and
matplotlib figures (BA vs RA per defence, RA vs budget, the universal perturbations as images, backdoor ASR).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

FIGURES = {
    "ba_ra.png": "Benign accuracy and robust accuracy per defence (largest budget)",
    "ra_vs_eps.png": "Robust accuracy against the perturbation budget",
    "perturbations.png": "The universal perturbations (scaled to the full grey range)",
    "asr.png": "Backdoor attack success rate per defence",
}


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.get("status", "ok").astype(str).eq("ok")] if "status" in frame else frame


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (encoder, task, defence): BA, the worst RA over attacks and budgets (and which), mean RA at the
    largest budget, ASR."""
    frame = _ok(frame)
    rows = []
    for (enc, task, defence), group in frame.groupby(["encoder", "task", "defence"], sort=False):
        ra = group.dropna(subset=["RA"])
        row = {"encoder": enc, "task": task, "defence": defence, "BA": group["BA"].mean()}
        if len(ra):
            worst = ra.loc[ra["RA"].idxmin()]
            top = ra[ra["eps_255"] == ra["eps_255"].max()]
            row.update({"worst_RA": worst["RA"], "worst_attack": f"{worst['attack']} @ {worst['eps_255']:g}/255",
                        f"mean_RA_eps{top['eps_255'].max():g}": top["RA"].mean()})  # fmt: skip
        asr = group["ASR"].dropna() if "ASR" in group else pd.Series(dtype=float)
        if len(asr):
            row["ASR"] = asr.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _save(fig, path: Path) -> bool:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _panels(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    return list(frame.groupby(["encoder", "task"], sort=False))


def plot_ba_ra(frame: pd.DataFrame, path: Path) -> bool:
    import matplotlib.pyplot as plt

    frame = _ok(frame).dropna(subset=["RA"])
    if frame.empty:
        return False
    panels = _panels(frame)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, ((enc, task), group) in zip(axes[0], panels, strict=True):
        top = group[group["eps_255"] == group["eps_255"].max()]
        defences = list(dict.fromkeys(top["defence"]))
        attacks = list(dict.fromkeys(top["attack"]))
        width = 0.8 / (len(attacks) + 1)
        x = np.arange(len(defences))
        ax.bar(x, [top[top.defence == d]["BA"].mean() for d in defences], width, label="BA", color="0.3")
        for i, attack in enumerate(attacks, start=1):
            values = [top[(top.defence == d) & (top.attack == attack)]["RA"].mean() for d in defences]
            ax.bar(x + i * width, values, width, label=f"RA {attack}")
        ax.set_xticks(x + width * len(attacks) / 2, defences, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_title(f"{enc} / {task} (eps {top['eps_255'].max():g}/255)", fontsize=9)
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_ra_vs_eps(frame: pd.DataFrame, path: Path) -> bool:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    frame = _ok(frame).dropna(subset=["RA"])
    if frame.empty or frame["eps_255"].nunique() < 2:
        return False
    panels = _panels(frame)
    # one colour per attack and one line style per defence, the same in every panel
    colours = {a: plt.cm.tab10(i % 10) for i, a in enumerate(dict.fromkeys(frame["attack"]))}
    styles = dict(zip(dict.fromkeys(frame["defence"]), ["-", "--", ":", "-."] * 8, strict=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels) + 1.8, 4), squeeze=False)
    for ax, ((enc, task), group) in zip(axes[0], panels, strict=True):
        for (defence, attack), curve in group.groupby(["defence", "attack"], sort=False):
            curve = curve.groupby("eps_255")["RA"].mean()
            ax.plot(curve.index, curve.values, styles[defence], color=colours[attack], marker="o")
        ax.set_xlabel("eps (1/255)")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(0, 1)
        ax.set_title(f"{enc} / {task}", fontsize=9)
    handles = [Line2D([], [], color=c, marker="o", label=a) for a, c in colours.items()]
    handles += [Line2D([], [], color="0.3", linestyle=st, label=f"defence: {d}") for d, st in styles.items()]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    return _save(fig, path)


def plot_perturbations(folder: Path, path: Path) -> bool:
    import matplotlib.pyplot as plt

    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        return False
    learnt = []
    for file in files:
        with np.load(file) as data:
            learnt.append((json.loads(str(data["meta"])), data["noise"][0]))
    learnt.sort(key=lambda m: (m[0]["encoder"], m[0]["attack"], m[0]["eps_255"]))  # grouped, not by file name
    cols = min(6, len(learnt))
    rows = int(np.ceil(len(learnt) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (meta, noise) in zip(axes.flat, learnt, strict=False):
        image = noise.transpose(1, 2, 0)
        span = np.abs(image).max() or 1.0
        image = (image / span + 1) / 2  # -eps -> black, +eps -> white
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{meta['attack']} {meta['eps_255']:g}/255\n{meta['encoder']}\nfooling "
                     f"{meta['fooling_rate']:.2f}", fontsize=7)  # fmt: skip
    return _save(fig, path)


def plot_asr(frame: pd.DataFrame, path: Path) -> bool:
    import matplotlib.pyplot as plt

    if "ASR" not in frame:
        return False
    frame = _ok(frame).dropna(subset=["ASR"])
    if frame.empty:
        return False
    shared = [c for c in ("encoder", "task") if frame[c].nunique() == 1]  # named once, in the title
    labels = ["\n".join(str(getattr(r, c)) for c in ("encoder", "task", "defence") if c not in shared)
              for r in frame.itertuples()]  # fmt: skip
    x, width = np.arange(len(frame)), 0.38
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(frame)), 3.8))
    ax.bar(x - width / 2, frame["ASR"], width, color="tab:red", label="ASR")
    ax.bar(x + width / 2, frame["BA"], width, color="0.3", label="BA")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("rate")
    ax.set_title("backdoor trigger\n" + " / ".join(str(frame[c].iloc[0]) for c in shared), fontsize=8)
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_report(frame: pd.DataFrame, out_dir: str | Path, config: dict | None = None) -> dict[str, Path]:
    """
    Write ``report.md``, ``report.html`` and the figures into ``out_dir`` (which holds ``results.csv`` and the
    ``perturbations/`` of the run). Returns the written paths by name.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    plots = {
        "ba_ra.png": lambda p: plot_ba_ra(frame, p),
        "ra_vs_eps.png": lambda p: plot_ra_vs_eps(frame, p),
        "perturbations.png": lambda p: plot_perturbations(out / "perturbations", p),
        "asr.png": lambda p: plot_asr(frame, p),
    }
    for name, plot in plots.items():
        if plot(out / name):
            made[name] = out / name
    summ = summary(frame)
    shown = frame.drop(columns=[c for c in ("art_ssl_version", "art_version", "torch_version") if c in frame])
    failed = frame[~frame["status"].astype(str).eq("ok")] if "status" in frame else frame.iloc[0:0]
    versions = {c: str(frame[c].iloc[0]) for c in ("art_ssl_version", "art_version", "torch_version")
                if c in frame and len(frame)}  # fmt: skip
    md = ["# art_ssl robustness audit", ""]
    if config:
        md += ["Configuration: `" + json.dumps(config, default=str) + "`", ""]
    if versions:
        md += ["Versions: " + ", ".join(f"{k.replace('_version', '')} {v}" for k, v in versions.items()), ""]
    md += ["## Summary", "", summ.to_markdown(index=False, floatfmt=".3f"), ""]
    if len(failed):
        md += [f"{len(failed)} cell(s) failed; their `status` column says why.", ""]
    for name, path in made.items():
        md += [f"## {FIGURES[name]}", "", f"![{FIGURES[name]}]({path.name})", ""]
    md += ["## All results", "", shown.to_markdown(index=False, floatfmt=".3f"), ""]
    (out / "report.md").write_text("\n".join(md))
    made["report.md"] = out / "report.md"
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>art_ssl robustness audit</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style></head><body>",
             "<h1>art_ssl robustness audit</h1>"]  # fmt: skip
    if config:
        parts.append(f"<p>Configuration: <code>{html.escape(json.dumps(config, default=str))}</code></p>")
    if versions:
        parts.append("<p>Versions: " + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>")
    parts += ["<h2>Summary</h2>", summ.to_html(index=False, float_format="%.3f", border=0)]
    if len(failed):
        parts.append(f"<p>{len(failed)} cell(s) failed; their <code>status</code> column says why.</p>")
    for name in (n for n in FIGURES if n in made):
        parts += [f"<h2>{html.escape(FIGURES[name])}</h2>", f"<img src='{name}' alt='{html.escape(FIGURES[name])}'>"]
    parts += ["<h2>All results</h2>", shown.to_html(index=False, float_format="%.3f", border=0), "</body></html>"]
    (out / "report.html").write_text("\n".join(parts))
    made["report.html"] = out / "report.html"
    return made
