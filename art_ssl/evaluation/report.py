"""
The audit report, verdict first: ``report.md`` and ``report.html`` open with one paragraph per encoder and task that
a person can act on (the strongest downstream-agnostic attack, the best defence by a stated rule with its cost and
gain against ``none``, the backdoor and what removes it), then warnings (under-trained defences, possible gradient
masking), the tables (universal and white-box attacks apart, deltas against ``none``), a glossary, the figures, the
configuration and every result row.

Gradient-masking checks follow the evaluation guidelines of Carlini et al. ("On Evaluating Adversarial Robustness",
2019) and Croce & Hein (AutoAttack, ICML 2020): a white-box attack must do at least as well as a weaker
(universal / transfer) one, accuracy must fall as the budget grows, and an undefended model must fall to ~0 under
white-box PGD.
"""

from __future__ import annotations

import html
import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

FIGURES = {
    "ba_ra.png": "Benign accuracy and robust accuracy per defence (largest budget)",
    "ra_vs_eps.png": "Robust accuracy against the perturbation budget",
    "perturbations.png": "The universal perturbations (scaled to the full grey range)",
    "asr.png": "Backdoor attack success rate per defence",
}
GLOSSARY = {
    "BA": "benign accuracy: accuracy of the downstream model on the clean test images.",
    "RA": "robust accuracy: accuracy on the same test images with the attack's perturbation added (higher is better).",
    "DAE": "downstream-agnostic adversarial example: one universal perturbation learnt from the public encoder and "
    "unlabelled images only (AdvEncoder, PAP, SSP, UAPEPGD, UAP), added to every test image of any model "
    "fine-tuned from that encoder. The threat this audit is about.",
    "white-box attack": "a per-image attack that uses the downstream model's own gradients (PGD, AutoAttack): a "
    "far stronger attacker than the DAE threat model, shown as a bound and a sanity check.",
    "ASR": "attack success rate of a backdoor: the fraction of triggered test images of the other classes that the "
    "model puts in the attacker's target class.",
    "fooling rate": "label-free strength of a universal perturbation: the fraction of the attacker's images whose "
    "embedding changes k-means cluster when it is added.",
    "eps": "the L-inf budget of a perturbation, in 1/255 pixel units (every pixel moves by at most eps/255).",
    "ΔBA, ΔRA": "the difference to the `none` defence of the same encoder and task, in points (hundredths of "
    "accuracy); positive ΔRA is robustness gained, negative ΔBA is clean accuracy paid.",
    "flagged": "ZePAD only: the fraction of inputs its detector flags as DAEs (on clean inputs: false alarms).",
}
# Shown once in the configuration (versions) or only useful to the resume logic (the content keys stay in
# results.csv, where they decide which rows a rerun may reuse).
_VERSIONS = ("art_ssl_version", "art_version", "torch_version")
_HIDDEN = (*_VERSIONS, "cell_key", "encoder_key", "perturbation_key")


# ------------------------------------------------------------------------------------------------------ analysis
def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.get("status", "ok").astype(str).eq("ok")] if "status" in frame else frame


def _kind(attack: str) -> str:
    from art_ssl.evaluation.registry import attack_kind

    try:
        kind = attack_kind(attack)
    except ValueError:
        return "whitebox"
    return "universal" if kind == "adaptive" else kind  # an adaptive DAE is a DAE: the worst one counts


def _with_kind(frame: pd.DataFrame) -> pd.DataFrame:
    frame = _ok(frame).copy()
    frame["kind"] = [_kind(str(a)) for a in frame["attack"]] if len(frame) else pd.Series(dtype=str)
    for column in ("RA", "ASR", "flag_rate_clean", "flag_rate_attacked"):
        if column not in frame:
            frame[column] = np.nan
    return frame


def _panels(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    return list(frame.groupby(["encoder", "task"], sort=False))


def _ra_at_top(group: pd.DataFrame, kind: str) -> tuple[float | None, pd.DataFrame]:
    """The largest budget of ``kind`` attacks in ``group`` and RA there per (defence, attack), seeds averaged."""
    rows = group[group["kind"].eq(kind)].dropna(subset=["RA"])
    if rows.empty:
        return None, pd.DataFrame(columns=["defence", "attack", "RA"])
    top = rows["eps_255"].max()
    ra = rows[rows["eps_255"].eq(top)].groupby(["defence", "attack"], sort=False)["RA"].mean().reset_index()
    return float(top), ra


def defence_table(group: pd.DataFrame) -> pd.DataFrame:
    """One row per defence of one (encoder, task) group: BA, mean and worst DAE RA and the best white-box RA at the
    largest budget, ASR, ZePAD's flag rates, and the deltas against ``none`` (accuracy units)."""
    group = _with_kind(group)
    top_u, uni = _ra_at_top(group, "universal")
    top_w, wb = _ra_at_top(group, "whitebox")
    rows = []
    for defence in dict.fromkeys(group["defence"]):
        d = group[group["defence"].eq(defence)]
        u, w = uni[uni["defence"].eq(defence)], wb[wb["defence"].eq(defence)]
        worst = u.loc[u["RA"].idxmin()] if len(u) else None
        dae_flags = d[d["kind"].eq("universal") & d["eps_255"].eq(top_u)]["flag_rate_attacked"]
        rows.append(
            {
                "defence": defence,
                "BA": d["BA"].mean(),
                "DAE_RA_mean": u["RA"].mean() if len(u) else np.nan,
                "DAE_RA_worst": worst["RA"] if worst is not None else np.nan,
                "DAE_worst_attack": worst["attack"] if worst is not None else "",
                "whitebox_RA": w["RA"].min() if len(w) else np.nan,
                "ASR": d["ASR"].mean(),
                "flagged_clean": d["flag_rate_clean"].mean(),
                "flagged_DAE": dae_flags.mean(),
            }
        )
    table = pd.DataFrame(rows)
    base = table[table["defence"].eq("none")]
    for column, delta in (("BA", "dBA"), ("DAE_RA_mean", "dRA_DAE"), ("whitebox_RA", "dRA_whitebox")):
        table[delta] = table[column] - (base[column].iloc[0] if len(base) else np.nan)
    table.attrs.update(eps_universal=top_u, eps_whitebox=top_w)
    return table


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`defence_table` of every (encoder, task), with those two columns first."""
    parts = [defence_table(g).assign(encoder=enc, task=task) for (enc, task), g in _panels(_ok(frame))]
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    table = table[["encoder", "task"] + [c for c in table.columns if c not in ("encoder", "task")]]
    return table.dropna(axis=1, how="all")


def _pts(value: float) -> str:
    return f"{100 * value:+.1f} points"


def verdict(group: pd.DataFrame, max_ba_cost: float = 0.02, asr_removed: float = 0.1) -> str:
    """
    The actionable paragraph of one (encoder, task) group.

    :param group: Result rows of one encoder and task.
    :param max_ba_cost: The rule for the best defence: the highest mean DAE RA among defences that lose at most this
                        much BA against ``none`` (accuracy units; 0.02 = 2 points).
    :param asr_removed: A defence "removes" the backdoor when its ASR is at most this.
    """
    table = defence_table(group)
    enc, task = group["encoder"].iloc[0], group["task"].iloc[0]
    by = table.set_index("defence")
    out = [f"**{enc} on {task}.**"]
    eps_u = table.attrs["eps_universal"]
    if "none" not in by.index:
        out.append("No `none` row: the audit has no undefended reference, so no costs or gains can be stated.")
        return " ".join(out)
    none = by.loc["none"]
    if eps_u is not None and not math.isnan(none["DAE_RA_worst"]):
        drop = none["DAE_RA_worst"] - none["BA"]
        effect = (
            f"it drops RA to {none['DAE_RA_worst']:.2f} ({_pts(drop)})"
            if drop < 0
            else f"it does not lower accuracy (RA {none['DAE_RA_worst']:.2f}): a weak attack at these settings"
        )
        out.append(
            f"Undefended (BA {none['BA']:.2f}), the strongest DAE is {none['DAE_worst_attack']} at "
            f"{eps_u:g}/255: {effect}; the DAEs' mean RA is {none['DAE_RA_mean']:.2f}."
        )
        rule = f"highest mean DAE RA with BA cost <= {100 * max_ba_cost:g} points"
        others = table[~table["defence"].eq("none")].dropna(subset=["DAE_RA_mean"])
        fits = others[-others["dBA"] <= max_ba_cost + 1e-9]
        best = fits.loc[fits["DAE_RA_mean"].idxmax()] if len(fits) else None
        if best is not None and best["dRA_DAE"] > 0:
            text = (
                f"Best defence ({rule}): **{best['defence']}**, BA {best['BA']:.2f} ({_pts(best['dBA'])}), mean "
                f"DAE RA {best['DAE_RA_mean']:.2f} ({_pts(best['dRA_DAE'])} against `none`)"
            )
            if not math.isnan(best["whitebox_RA"]):
                text += f"; white-box attacks still leave RA {best['whitebox_RA']:.2f}"
            out.append(text + ".")
        elif len(others):
            top = others.loc[others["DAE_RA_mean"].idxmax()]
            out.append(
                f"No audited defence raises mean DAE RA within the rule ({rule}); the most robust, "
                f"**{top['defence']}**, changes mean DAE RA by {_pts(top['dRA_DAE'])} (to "
                f"{top['DAE_RA_mean']:.2f}) and BA by {_pts(top['dBA'])} (to {top['BA']:.2f})."
            )
        else:
            out.append("No defence other than `none` was audited: add e.g. `--defences none trades zepad`.")
    elif eps_u is None:
        out.append(f"No universal (DAE) attack in this audit; BA undefended {none['BA']:.2f}.")
    asr = table.dropna(subset=["ASR"]).set_index("defence")["ASR"]
    if "none" in asr.index:
        out.append(
            f"Backdoor: the trigger sends {asr['none']:.0%} of the other classes' triggered test images to "
            f"its target (ASR {asr['none']:.2f}) without defence;"
        )
        removers = [
            f"{d} (ASR {a:.2f}, BA {_pts(by.loc[d, 'dBA'])})"
            for d, a in asr.items()
            if d != "none" and a <= asr_removed
        ]
        if asr["none"] <= asr_removed:
            out[-1] += " it does not work on this task."
        elif removers:
            out[-1] += f" removed (ASR <= {asr_removed:g}) by " + ", ".join(removers) + "."
        else:
            rest = asr.drop("none")
            low = f" (lowest: {rest.idxmin()}, ASR {rest.min():.2f})" if len(rest) else ""
            tried = set(asr.index)
            hint = [d for d in ("super_finetune", "distillation") if d not in tried]
            out[-1] += f" no audited defence removes it{low}" + (f"; try {' or '.join(hint)}." if hint else ".")
    return " ".join(out)


def masking_checks(frame: pd.DataFrame, tolerance: float = 0.05, undefended_max: float = 0.1) -> list[str]:
    """
    Signs of gradient masking, each naming its cells (Carlini et al. 2019; Croce & Hein 2020):

    - a white-box attack's RA above a universal (transfer-like, weaker) attack's RA at the same budget;
    - RA rising as the budget grows (an attack's RA at a larger eps above its RA at a smaller one);
    - an undefended model (``none``) keeping white-box RA above ``undefended_max`` at the largest budget >= 8/255;
    - a backdoored zoo encoder whose white-box RA is above that of the clean encoder it was made from.

    :param frame: Result rows.
    :param tolerance: Differences up to this (accuracy units) are sampling noise (white-box attacks run on fewer
                      images).
    :param undefended_max: White-box RA an undefended model may keep.
    """
    frame = _with_kind(frame).dropna(subset=["RA"])
    if frame.empty:
        return []
    ra = frame.groupby(["encoder", "task", "defence", "kind", "attack", "eps_255"], sort=False)["RA"].mean()
    ra = ra.reset_index()
    flags = []
    for (enc, task, defence, eps), cell in ra.groupby(["encoder", "task", "defence", "eps_255"], sort=False):
        uni, wb = cell[cell["kind"].eq("universal")], cell[cell["kind"].eq("whitebox")]
        if len(uni) and len(wb):
            weakest = uni.loc[uni["RA"].idxmin()]
            for w in wb.itertuples():
                if w.RA > weakest["RA"] + tolerance:
                    flags.append(
                        f"{enc} / {task} / {defence} at {eps:g}/255: white-box {w.attack} leaves RA "
                        f"{w.RA:.2f}, above the universal {weakest['attack']}'s {weakest['RA']:.2f}."
                    )
    for (enc, task, defence, attack), curve in ra.groupby(["encoder", "task", "defence", "attack"], sort=False):
        curve = curve.sort_values("eps_255")
        values, budgets = curve["RA"].to_numpy(), curve["eps_255"].to_numpy()
        for i in range(1, len(values)):
            if values[i] > values[:i].min() + tolerance:
                j = int(values[:i].argmin())
                flags.append(
                    f"{enc} / {task} / {defence} / {attack}: RA {values[i]:.2f} at {budgets[i]:g}/255 is "
                    f"above {values[j]:.2f} at {budgets[j]:g}/255 (RA must fall as eps grows)."
                )
    wb_none = ra[ra["kind"].eq("whitebox") & ra["defence"].eq("none")]
    for (enc, task, attack), curve in wb_none.groupby(["encoder", "task", "attack"], sort=False):
        top = curve.loc[curve["eps_255"].idxmax()]
        if top["eps_255"] >= 8 and top["RA"] > undefended_max:
            flags.append(
                f"{enc} / {task} / none / {attack}: an undefended model keeps white-box RA {top['RA']:.2f} "
                f"at {top['eps_255']:g}/255; PGD should take it to ~0. Check with more steps, restarts or "
                "AutoAttack before believing it."
            )
    flags += _backdoored_vs_clean(ra, tolerance)
    return flags


def _backdoored_vs_clean(ra: pd.DataFrame, tolerance: float) -> list[str]:
    from art_ssl.zoo import encoder_info

    flags = []
    encoders = set(ra["encoder"])
    for enc in encoders:
        try:
            base = encoder_info(enc).get("base_encoder")
        except (KeyError, ValueError):
            continue
        if base not in encoders:
            continue
        wb = ra[ra["kind"].eq("whitebox")].set_index(["encoder", "task", "defence", "attack", "eps_255"])["RA"]
        for (e, task, defence, attack, eps), value in wb.items():
            other = (base, task, defence, attack, eps)
            if e == enc and other in wb.index and value > wb[other] + tolerance:
                flags.append(
                    f"{enc} / {task} / {defence} / {attack} at {eps:g}/255: the backdoored encoder keeps "
                    f"white-box RA {value:.2f} against {wb[other]:.2f} for the clean {base}: a backdoor does "
                    "not add robustness; its gradients may be less informative."
                )
    return flags


def budget_warnings(frame: pd.DataFrame, config: dict | None) -> list[str]:
    """Defences of ``frame`` that trained below their converged budget
    (:data:`~art_ssl.evaluation.registry.TRAINING_BUDGETS`) in the run that ``config`` describes."""
    from art_ssl.evaluation.registry import training_warnings

    if not config or "epochs" not in config:
        return []
    out = []
    frame = _ok(frame)
    for defence in dict.fromkeys(frame["defence"]):
        rows = frame[frame["defence"].eq(defence)]
        n_train = int(rows["n_train"].min()) if "n_train" in rows and rows["n_train"].notna().any() else None
        if n_train is None:
            continue
        out += training_warnings(
            defence, config["epochs"], n_train, config.get("batch_size", 256), config.get("defence_settings")
        )
    return out


def configuration(frame: pd.DataFrame, config: dict | None, run: dict | None = None) -> pd.DataFrame:
    """The run's settings as (setting, value) rows: date, duration, versions, every option, and the caps a dataset
    imposed on the requested image counts."""
    run = run or {}
    rows = []
    started = run.get("started")
    rows.append(("date (UTC)", started or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M") + " (report)"))
    if run.get("seconds") is not None:
        rows.append(("duration", f"{run['seconds'] / 60:.1f} min"))
    else:
        cells = frame.get("train_seconds", pd.Series(dtype=float)).fillna(0).sum()
        rows.append(("duration", f"not recorded (training time in the rows: {cells / 60:.1f} min)"))
    for column, name in zip(_VERSIONS, ("art_ssl", "ART", "torch"), strict=True):
        if column in frame and len(frame):
            rows.append((f"{name} version", ", ".join(sorted(set(frame[column].astype(str))))))
    rows.append(("python", platform.python_version()))
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", _value(v)) for k, v in value.items()]
        else:
            rows.append((key, _value(value)))
    rows += [("cap", text) for text in caps(frame, config)]
    return pd.DataFrame(rows, columns=["setting", "value"])


def _value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) if value else "(none)"
    if value is None:
        return "all / automatic"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def caps(frame: pd.DataFrame, config: dict | None) -> list[str]:
    """Where a dataset has fewer images than requested (e.g. digits' 1,257 training images for 2,000)."""
    if not config:
        return []
    out = []
    for column, key in (("n_train", "n_train"), ("n_test", "n_test")):
        wanted = config.get(key)
        if not wanted or column not in frame:
            continue
        universal = frame[[_kind(str(a)) != "whitebox" for a in frame["attack"]]] if column == "n_test" else frame
        for task, rows in universal.groupby("task", sort=False):
            used = rows[column].dropna()
            if len(used) and int(used.max()) < int(wanted):
                out.append(
                    f"{task}: {int(used.max()):,} {column.replace('n_', '')} images used of {int(wanted):,} "
                    "requested (the dataset has no more)"
                )
    return out


# ------------------------------------------------------------------------------------------------------ figures
def _save(fig, path: Path) -> bool:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def _bars(ax, x, values, width, labels: bool = True, **kwargs) -> None:
    """Bars whose zero values stay visible (a sliver of height 0.01) and carry their value as a label."""
    values = np.asarray(values, dtype=float)
    finite = ~np.isnan(values)
    bars = ax.bar(
        np.asarray(x)[finite], np.maximum(values[finite], 0.01), width, edgecolor="black", linewidth=0.4, **kwargs
    )
    if labels:
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values[finite]], fontsize=6, rotation=90, padding=2)


def plot_ba_ra(frame: pd.DataFrame, path: Path) -> bool:
    import matplotlib.pyplot as plt

    frame = _with_kind(frame).dropna(subset=["RA"])
    if frame.empty:
        return False
    panels = _panels(frame)
    attacks = list(dict.fromkeys(frame.sort_values("kind", key=lambda k: k.ne("universal"))["attack"]))
    n_def = frame["defence"].nunique()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(7.0, 0.3 * n_def * (len(attacks) + 1)), 3.6 * len(panels)), squeeze=False
    )
    colours = {a: plt.cm.tab10(i % 10) for i, a in enumerate(attacks)}
    for ax, ((enc, task), group) in zip(axes[:, 0], panels, strict=True):
        defences = list(dict.fromkeys(group["defence"]))
        width = 0.8 / (len(attacks) + 1)
        x = np.arange(len(defences))
        _bars(ax, x, [group[group.defence == d]["BA"].mean() for d in defences], width, label="BA", color="0.3")
        for i, attack in enumerate(attacks, start=1):
            rows = group[group["attack"].eq(attack)]
            if rows.empty:
                continue
            top = rows[rows["eps_255"] == rows["eps_255"].max()]
            kind = rows["kind"].iloc[0]
            values = [top[top.defence == d]["RA"].mean() if (top.defence == d).any() else np.nan for d in defences]
            _bars(
                ax,
                x + i * width,
                values,
                width,
                color=colours[attack],
                hatch="//" if kind == "whitebox" else None,
                label=f"RA {attack} ({'white-box' if kind == 'whitebox' else 'DAE'}, {top['eps_255'].max():g}/255)",
            )
        ax.set_xticks(x + width * len(attacks) / 2, defences)
        ax.set_ylim(0, 1.18)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(f"{enc} / {task}", fontsize=9)
        ax.set_ylabel("accuracy")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.98))
    fig.tight_layout()
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
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4), squeeze=False)
    for ax, ((enc, task), group) in zip(axes[0], panels, strict=True):
        for (defence, attack), curve in group.groupby(["defence", "attack"], sort=False):
            curve = curve.groupby("eps_255")["RA"].mean()
            ax.plot(curve.index, curve.values, styles[defence], color=colours[attack], marker="o", clip_on=False)
            ax.annotate(
                f"{curve.values[-1]:.2f}",
                (curve.index[-1], curve.values[-1]),
                fontsize=6,
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
            )
        ax.set_xlabel("eps (1/255)")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(0, 1)
        ax.set_title(f"{enc} / {task}", fontsize=9)
    handles = [Line2D([], [], color=c, marker="o", label=a) for a, c in colours.items()]
    handles += [Line2D([], [], color="0.3", linestyle=st, label=f"defence: {d}") for d, st in styles.items()]
    fig.tight_layout()
    fig.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))
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
        fooling = meta.get("fooling_rate")
        fooling = "n/a" if fooling is None or (isinstance(fooling, float) and math.isnan(fooling)) else f"{fooling:.2f}"
        ax.set_title(f"{meta['attack']} {meta['eps_255']:g}/255\n{meta['encoder']}\nfooling {fooling}", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_asr(frame: pd.DataFrame, path: Path) -> bool:
    import matplotlib.pyplot as plt

    if "ASR" not in frame:
        return False
    frame = _ok(frame).dropna(subset=["ASR"])
    if frame.empty:
        return False
    shared = [c for c in ("encoder", "task") if frame[c].nunique() == 1]  # named once, in the title
    labels = [
        "\n".join(str(getattr(r, c)) for c in ("encoder", "task", "defence") if c not in shared)
        for r in frame.itertuples()
    ]
    x, width = np.arange(len(frame)), 0.38
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(frame)), 3.8))
    _bars(ax, x - width / 2, frame["ASR"], width, color="tab:red", label="ASR")
    _bars(ax, x + width / 2, frame["BA"], width, color="0.3", label="BA")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("rate")
    ax.set_title("backdoor trigger\n" + " / ".join(str(frame[c].iloc[0]) for c in shared), fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------------ tables
_INT_COLUMNS = ("seed", "n_train", "n_test", "target")


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as strings for a reader: 3 decimals, deltas in signed points, whole numbers without decimals, and
    "–" instead of NaN."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if column.startswith("d") and column[1:2].isupper() and pd.api.types.is_numeric_dtype(values):
            out[column] = [("–" if pd.isna(v) else f"{100 * v:+.1f}") for v in values]
        elif column in _INT_COLUMNS or column == "eps_255":
            out[column] = [("–" if pd.isna(v) else (f"{v:g}" if column == "eps_255" else str(int(v)))) for v in values]
        elif pd.api.types.is_float_dtype(values):
            out[column] = [("–" if pd.isna(v) else f"{v:.3f}") for v in values]
        else:
            out[column] = ["–" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in values]
    return out


_HEADERS = {
    "DAE_RA_mean": "DAE RA mean",
    "DAE_RA_worst": "DAE RA worst",
    "DAE_worst_attack": "worst DAE",
    "whitebox_RA": "white-box RA",
    "dBA": "ΔBA",
    "dRA_DAE": "ΔRA DAE",
    "dRA_whitebox": "ΔRA white-box",
    "flagged_clean": "flagged clean",
    "flagged_DAE": "flagged DAE",
    "eps_255": "eps (/255)",
    "fooling_rate": "fooling rate",
    "flag_rate_clean": "flagged clean",
    "flag_rate_attacked": "flagged attacked",
    "attack_seconds": "attack s",
    "train_seconds": "train s",
    "base_encoder": "base encoder",
}


def _headed(frame: pd.DataFrame) -> pd.DataFrame:
    return display(frame).rename(columns=_HEADERS)


def _pivot(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    rows = _with_kind(frame)
    rows = rows[rows["kind"].eq(kind)].dropna(subset=["RA"])
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(cell=[f"{a} @ {e:g}/255" for a, e in zip(rows["attack"], rows["eps_255"], strict=True)])
    table = rows.pivot_table(
        index=["encoder", "task", "defence"], columns="cell", values="RA", aggfunc="mean", sort=False
    )
    return table.reset_index()


# (heading, kind, content): kind "paras" or "list" with a list of strings (a list's first one is its lead-in),
# "table" with a data frame, "figure" with the image's file name
Section = tuple[str, str, list[str] | pd.DataFrame | str]


def _sections(
    frame: pd.DataFrame, config: dict | None, run: dict | None, max_ba_cost: float, asr_removed: float, tolerance: float
) -> list[Section]:
    """The report as (heading, kind, content) where kind is "paras", "list", "table" or "figure"."""
    ok = _ok(frame)
    sections: list[Section] = []
    warnings = budget_warnings(frame, config)
    flags = masking_checks(frame, tolerance)
    paras = []
    for (enc, task), group in _panels(ok):
        para = verdict(group, max_ba_cost, asr_removed)
        mine = [f for f in flags if f.startswith(f"{enc} / {task} /")]
        cautions = ([f"{len(mine)} possible gradient-masking sign(s)"] if mine else []) + (
            ["under-trained defences"] if warnings else []
        )
        if cautions:
            para += " Caution: " + " and ".join(cautions) + ", see the warnings below."
        paras.append(para)
    sections.append(("Verdict", "paras", paras or ["No successful cell: see the `status` column of the results."]))
    if warnings:
        sections.append(
            (
                "Warning: under-trained defences",
                "list",
                [
                    "These defences trained below the budget at which they converge on our benchmark, "
                    "so their BA and RA "
                    "under-rate them; rerun with more `--epochs` (or the settings named) before choosing one:",
                    *warnings,
                ],
            )
        )
    if flags:
        sections.append(
            (
                "Warning: possible gradient masking",
                "list",
                [
                    "Checks recommended by Carlini et al. (2019) and Croce & Hein (AutoAttack, 2020); "
                    "each names its cells. "
                    "A flagged robustness number may be an artefact of gradients that mislead the attack:",
                    *flags,
                ],
            )
        )
    failed = frame[~frame["status"].astype(str).eq("ok")] if "status" in frame else frame.iloc[0:0]
    if len(failed):
        sections.append(
            (
                "Failed cells",
                "list",
                [f"{len(failed)} cell(s) failed; their `status` says why:", *sorted(set(failed["status"].astype(str)))],
            )
        )
    summ = summary(ok)
    if len(summ):
        sections.append(("Defences against `none`", "table", summ))
    for title, kind in (("Universal (DAE) attacks: RA", "universal"), ("White-box attacks: RA", "whitebox")):
        pivot = _pivot(ok, kind)
        if len(pivot):
            sections.append((title, "table", pivot))
    if "ASR" in ok and ok["ASR"].notna().any():
        cols = [c for c in ("encoder", "task", "defence", "target", "BA", "ASR") if c in ok]
        sections.append(("Backdoor", "table", ok.dropna(subset=["ASR"])[cols]))
    terms = [f"**{k}**: {v}" for k, v in GLOSSARY.items()] + [f"**{d}**: {t}" for d, t in _defence_glossary(ok)]
    sections.append(("Glossary", "list", ["Terms used in this report, and the audited defences:", *terms]))
    return sections


def _defence_glossary(frame: pd.DataFrame) -> list[tuple[str, str]]:
    from art_ssl.evaluation.registry import DEFENCE_GLOSSARY

    return [(d, DEFENCE_GLOSSARY.get(d, "")) for d in dict.fromkeys(frame["defence"])] if len(frame) else []


def _html_inline(text: str) -> str:
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def write_report(
    frame: pd.DataFrame,
    out_dir: str | Path,
    config: dict | None = None,
    run: dict | None = None,
    max_ba_cost: float = 0.02,
    asr_removed: float = 0.1,
    tolerance: float = 0.05,
) -> dict[str, Path]:
    """
    Write ``report.md``, ``report.html`` and the figures into ``out_dir`` (which holds ``results.csv`` and the
    ``perturbations/`` of the run). Returns the written paths by name.

    :param frame: The grid's result rows.
    :param out_dir: Output folder.
    :param config: The run's settings (``dataclasses.asdict(GridConfig)``), shown as a table and used for the
                   training-budget warnings and the caps.
    :param run: ``{"started": "YYYY-MM-DD HH:MM", "seconds": float}`` of the run, shown in the configuration.
    :param max_ba_cost: The verdict's rule: best defence = highest mean DAE RA among those losing at most this much
                        BA against ``none``.
    :param asr_removed: ASR at or below which a defence removes a backdoor.
    :param tolerance: Accuracy difference the gradient-masking checks treat as noise.
    """
    import matplotlib

    matplotlib.use("Agg")
    if not 0 <= max_ba_cost <= 1:
        raise ValueError(f"`max_ba_cost` must be in [0, 1] (accuracy units), got {max_ba_cost!r}.")
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
    sections = _sections(frame, config, run, max_ba_cost, asr_removed, tolerance)
    sections += [(FIGURES[name], "figure", name) for name in FIGURES if name in made]
    sections.append(("Configuration", "table", configuration(frame, config, run)))
    shown = frame.drop(columns=[c for c in _HIDDEN if c in frame])
    if "status" in shown and shown["status"].astype(str).eq("ok").all():
        shown = shown.drop(columns="status")
    sections.append(("All results", "table", shown))

    md = ["# art_ssl robustness audit", ""]
    for title, kind, content in sections:
        md += [f"## {title}", ""]
        if isinstance(content, pd.DataFrame):  # "table"
            md += [_headed(content).to_markdown(index=False, disable_numparse=True), ""]
        elif isinstance(content, str):  # "figure"
            md += [f"![{title}]({content})", ""]
        elif kind == "paras":
            for para in content:
                md += [para, ""]
        else:  # "list"
            md += [content[0], ""] + [f"- {item}" for item in content[1:]] + [""]
    (out / "report.md").write_text("\n".join(md))
    made["report.md"] = out / "report.md"

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>art_ssl robustness audit</title>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 12px;line-height:1.4}"
        "table{border-collapse:collapse;font-size:12px;margin-bottom:1em;max-width:100%}"
        "td,th{border:1px solid #ccc;padding:2px 5px;text-align:right}td:first-child,th{text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%;height:auto}.verdict p{background:#f6f8fa;padding:8px 12px;"
        "border-left:4px solid #2a6}.warn li{color:#8a4b00}</style></head><body>",
        "<h1>art_ssl robustness audit</h1>",
    ]
    for title, kind, content in sections:
        parts.append(f"<h2>{_html_inline(title)}</h2>")
        if isinstance(content, pd.DataFrame):  # "table"
            parts.append(_headed(content).to_html(index=False, border=0, escape=True))
        elif isinstance(content, str):  # "figure"
            parts.append(f"<img src='{content}' alt='{html.escape(title)}'>")
        elif kind == "paras":
            parts.append("<div class='verdict'>" + "".join(f"<p>{_html_inline(p)}</p>" for p in content) + "</div>")
        else:  # "list"
            cls = " class='warn'" if title.startswith("Warning") else ""
            parts += [
                f"<p>{_html_inline(content[0])}</p>",
                f"<ul{cls}>" + "".join(f"<li>{_html_inline(i)}</li>" for i in content[1:]) + "</ul>",
            ]
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts))
    made["report.html"] = out / "report.html"
    return made
