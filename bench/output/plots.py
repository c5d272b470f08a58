"""PNG figures for the reports (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse.points import fed_points, records
from bench.plan.knobs import PRECISIONS


def _pyplot():
    """matplotlib's pyplot, drawing to files (Agg), imported once a figure is drawn: the import
    costs a process 0.6 s of CPU, and most commands draw nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, axes, path: Path) -> Path:
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def throughput(points: pd.DataFrame, path: Path) -> Path | None:
    """Images/s against batch size, a line per pipeline and loader setting, a panel per backbone."""
    ok = points[points.repeats_ok > 0]
    if ok.empty:
        return None
    groups = list(ok.groupby(["backbone", "input_size"]))
    fig, axes = _pyplot().subplots(1, len(groups), figsize=(6 * len(groups), 4.2), squeeze=False)
    for ax, ((backbone, size), group) in zip(axes[0], groups):
        for name, line in group.groupby("setting"):
            line = line.sort_values("batch")
            ax.errorbar(
                line.batch,
                line.train_img_s,
                marker="o",
                capsize=3,
                label=name,
                yerr=[
                    line.train_img_s - line.get("train_img_s_min", line.train_img_s),
                    line.get("train_img_s_max", line.train_img_s) - line.train_img_s,
                ],
            )
        ax.set(title=f"{backbone} at {size}px", xlabel="batch", ylabel="training images/s")
        ax.set_xscale("log", base=2)
        batches = sorted(group.batch.unique())
        ax.set_xticks(batches, [str(int(b)) for b in batches])
        ax.minorticks_off()
    return _save(fig, axes[0], path)


def feed(points: pd.DataFrame, path: Path) -> Path | None:
    """Images/s of each pipeline setting, end to end with its repeats' range, against the model's
    rate alone (a line): a panel per model, batch and precision. A bar above its lower ceiling says
    why over it: within the noise (the verdict stands) or the reason its bound is withheld."""
    fed = fed_points(points)
    if fed.empty:
        return None
    groups = list(fed.groupby(["backend", "backbone", "input_size", "precision", "batch"]))
    fig, axes = _pyplot().subplots(
        1, len(groups), figsize=(max(5, 1.2 * len(fed) / len(groups) + 3) * len(groups), 4.2), squeeze=False
    )
    for ax, ((backend, backbone, size, precision, batch), group) in zip(axes[0], groups):
        low = (group.train_img_s - group.get("train_img_s_min", group.train_img_s)).clip(lower=0)
        high = (group.get("train_img_s_max", group.train_img_s) - group.train_img_s).clip(lower=0)
        ax.bar(group.setting, group.train_img_s, yerr=[low.fillna(0), high.fillna(0)], capsize=3, label="end to end")
        for x, p in zip(group.setting, records(group)):
            ceilings = [v for v in (p["pipeline_img_s"], p["model_img_s"]) if pd.notna(v)]
            if ceilings and p["train_img_s"] > min(ceilings):
                doubt = p.get("bound_doubt") if isinstance(p.get("bound_doubt"), str) else ""
                ax.annotate(
                    "withheld" if doubt else "above: within noise",
                    (x, p["train_img_s"]),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    xytext=(0, 8),
                    textcoords="offset points",
                )
        ax.scatter(group.setting, group.pipeline_img_s, marker="_", s=400, color="black", label="pipeline alone")
        ax.axhline(group.model_img_s.median(), color="tab:red", label="model alone")
        ax.set(
            title=f"{backbone} {size}px b{batch} {PRECISIONS.get(precision, precision)} on {backend}",
            ylabel="training images/s",
        )
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return _save(fig, axes[0], path)


PHASE_SHADES = {"warmup": ("tab:orange", "warm-up"), "window": ("tab:green", "measured window")}


def utilisation(samples_csv: Path, title: str, path: Path) -> Path | None:
    """CPU (machine and the run's processes) and GPU utilisation over one run, the warm-up and
    the measured window shaded."""
    if not samples_csv.is_file():
        return None
    samples = pd.read_csv(samples_csv)
    if samples.empty:
        return None
    fig, ax = _pyplot().subplots(figsize=(8, 3.6))
    if "phase" in samples:  # each sample covers the time since the one before
        labelled = set()
        for start, end, phase in zip([0.0, *samples.t_s[:-1]], samples.t_s, samples.phase):
            if phase in PHASE_SHADES:
                colour, label = PHASE_SHADES[phase]
                ax.axvspan(start, end, color=colour, alpha=0.12, lw=0, label=None if phase in labelled else label)
                labelled.add(phase)
    ax.plot(samples.t_s, samples.cpu_util, label="CPU, whole machine (%)")
    if "proc_cpu_pct" in samples:
        ax.plot(samples.t_s, samples.proc_cpu_pct, label="the run's processes (% of one core)", alpha=0.8)
    for column in [c for c in samples.columns if c.startswith("gpu") and c.endswith("_util")]:
        ax.plot(samples.t_s, samples[column], label=f"{column.replace('_util', '').upper()} (%)")
    ax.set(title=title, xlabel="seconds into training", ylabel="utilisation")
    return _save(fig, [ax], path)


def machines(best: pd.DataFrame, path: Path) -> Path | None:
    """Each machine's best images/s, a group of bars per backbone."""
    if best.empty:
        return None
    table = best.pivot_table(index="backbone", columns="machine", values="train_img_s")
    ax = table.plot.bar(figsize=(7, 4), rot=0)
    ax.set(ylabel="best training images/s", title="Machines side by side")
    return _save(ax.get_figure(), [ax], path)
