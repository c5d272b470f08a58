"""report.md from a results folder: the machine, then tables in the seed's shape. It formats
the points table (bench/analyse/points.py) and the runs; it computes no figure of its own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse import cautions, verdicts
from bench.analyse.points import records, runnable, setting, spec_of, write_csv
from bench.output import header, sections, traces
from bench.output.advice import do_this
from bench.plan.grid import model_ceiling, pipeline_ceiling
from bench.plan.knobs import GROUP_KNOBS, ROW_KNOB
from bench.results import profiles
from bench.results.store import read_json
from pipelines.registry import knob_meaning

MEASURED_OVER = (
    "What every figure is measured over and against: images/s, utilisation, power, energy, data wait and "
    "CPU % over each run's measured window (the steps after a warm-up: bench/run/timing.py), the median over the "
    "repeats that succeeded (± half their range); the ceilings (pipeline alone, model alone) once, and in each "
    "later pass again while their margin over each other is within the noise or while one measured once "
    "bounds several configurations; efficiency = images/s over the lower ceiling; TFLOP/s = "
    "images/s x the training FLOPs per image counted from the model's layers (frozen layers need no "
    "weight gradient), and MFU that over the peak of every device the run used (gpus x hosts x one "
    "device's measured peak, probed once per machine and kept: sweep.json's peak_cached dates a kept one; "
    "MFU (datasheet) against the datasheet's per-GPU peak); images per joule = the "
    "window's images over the energy counters of every GPU of every host; the decode ceiling = one core's "
    "decode rate into the run's transfer type x the physical cores (a cached pipeline is not held against "
    "it); compile and loader start are parts of the warm-up. A verdict (a bound, the setting that "
    "changed most, the fastest) claims a difference only beyond the noise, geometric mean of the repeats "
    "to geometric mean (the rule in the bound's note above); a bound is withheld, with its reason, where its "
    "figures cannot carry it (that rule says when), and the header says how busy the machine was."
)


def _pct(value) -> str:
    return "" if pd.isna(value) else f"{value:.0f}%"


def _table(points: pd.DataFrame, cell) -> str:
    rows = []
    for batch, group in points.sort_values(ROW_KNOB, ascending=False, kind="stable").groupby(ROW_KNOB, sort=False):
        ran = group[group.train_steps.notna()] if "train_steps" in group else group.iloc[:0]
        label = f"{batch}"
        if len(ran):
            label += f" ({int(ran.train_steps.iloc[0])}/{int(ran.val_steps.iloc[0])} steps)"
        row = {"batch (train/val steps)": label}
        for _, point in group.iterrows():
            row[point["setting"]] = cell(point)
        rows.append(row)
    table = pd.DataFrame(rows).fillna("")
    return table.to_markdown(index=False)


def _time_cell(p) -> str:
    if p["repeats_ok"] == 0:
        return f"**{p['status']}**"
    spread = f" ±{p['spread'] / 2:.0%}" if p["repeats_ok"] > 1 else ""
    return f"{p['total_s']:.1f} s · {p['train_img_s']:.1f} img/s{spread}"


def _util_cell(p) -> str:
    if p["repeats_ok"] == 0:
        return f"**{p['status']}**"
    text = f"CPU {_pct(p['cpu_util_mean'])} (p90 {_pct(p['cpu_util_p90'])})" if pd.notna(p["cpu_util_mean"]) else ""
    if pd.notna(p.get("gpu_util_mean")):
        text += (" · " if text else "") + (
            f"GPU {_pct(p['gpu_util_mean'])} (p90 {_pct(p['gpu_util_p90'])}), {p['gpu_mem_peak_mb']:.0f} MB"
        )
    return text


FIGURES = {"throughput.png": "images/s against batch size", "feed.png": "feeding the model"}  # plots.<name>
# utilisation.png's caption names its run; a quick rewrite (no plots) knows only that the last full write drew it
DRAWN_BEFORE = "CPU and GPU utilisation over the run the last full report chose"
GPU_FIGURES = ("gpu_util_mean", "gpu_util_p90", "mfu_datasheet", "gpu_energy_j", "img_per_joule", "gpu_power_w_mean")
GPU_LEFT_OUT = "GPU utilisation, datasheet MFU, GPU energy and what would feed this GPU"


def render(
    every: pd.DataFrame,
    rows: list[dict],
    env: dict,
    sweep: dict,
    figures: list[tuple[str, str]] = (),
    left_out: int = 0,
    stale: set[str] = frozenset(),
) -> str:
    """The report: `every` is the points table (bench/analyse/points.py) of `rows`, the folder's current
    runs; `left_out` counts the rows of other machines or commits the folder keeps, `stale` the
    points an earlier sweep planned that the report leaves out (superseded)."""
    lines = [f"# gpubench: `{sweep.get('preset', '?')}` on `{sweep.get('gpu', '?')}`", ""]
    lines += header.machine(env) + header.trained_on(rows)
    gpu_unused = sweep.get("gpu_used") is False and bool(env.get("gpus"))
    if gpu_unused:  # --gpu cpu on a GPU machine: NVML's figures are an idle GPU's
        lines.append(f"- The GPU was not used: `--gpu cpu` trained on the CPU on purpose; {GPU_LEFT_OUT} are left out")
        every = every.assign(**{c: float("nan") for c in GPU_FIGURES if c in every})
    if "-mig-" in str(sweep.get("gpu", "")):  # NVML reports no utilisation on a MIG-enabled card
        lines.append(
            f"- `{sweep['gpu']}` is a MIG slice: NVML reports no GPU utilisation for it, so that column is "
            "empty; the datasheet's figures are the whole card's, so datasheet MFU is left out"
        )
    sheets = profiles.missing(str(sweep.get("gpu", "")))
    if sheets and env.get("gpus"):
        lines.append(
            f"- No datasheet for `{'`, `'.join(sheets)}` (bench/results/profiles/{sheets[0]}.toml): MFU is against the "
            "peak measured here; datasheet MFU and price are left out"
        )
    if sweep:
        lines += [
            f"- Command: `{sweep.get('command', '')}`",
            f"- Data: `{sweep.get('data')}`: {sweep.get('train_images')} training and "
            f"{sweep.get('val_images')} validation images, {sweep.get('classes')} classes"
            + (f"; {sweep['skipped']} unreadable images skipped" if sweep.get("skipped") else "")
            + (f"; {sweep['ignored']} hidden or system files and folders passed over" if sweep.get("ignored") else ""),
        ]
    if left_out:
        lines.append(f"- {left_out} runs of another machine or commit are kept in runs.jsonl and left out here")
    if stale:
        lines.append(
            f"- {len(stale)} points an earlier sweep planned, that never ran or bound no point now, are kept in "
            "runs.jsonl and left out here"
        )
    if cautions.load_said(every):
        lines.append(f"- {cautions.load_said(every)}")
    lines.append("")
    if not rows:
        return "\n".join(lines + ["No runs yet."]) + "\n"
    frame = pd.DataFrame(rows)
    points = every[every.role == "point"]
    if points.empty:
        return "\n".join(lines + ["Only ceiling runs so far."]) + "\n"
    varying = [k for k in GROUP_KNOBS if points[k].nunique(dropna=False) > 1]
    if points.machine.fillna("").nunique() > 1:  # a fleet's jobs ran on several machines: each apart
        points = points.assign(setting=points.host.fillna("?") + ": " + points.setting)
        varying.append("machine")
    groups = points.groupby(varying, dropna=False) if varying else [((), points)]
    top = [(caption, name) for caption, name in figures if name != "feed.png"]  # feed.png goes with its table
    lines += [f"![{caption}]({name})" for caption, name in top] + ([""] if top else [])
    lines += [
        "Cells: total time of all epochs with validation (as the seed timed it) · training "
        "images/s over the measured window: the steps after a warm-up, timed without "
        "validation or checkpoints. The median of the repeats that succeeded."
        + (
            " Repeats as needed: one of each point, the others only where its verdict or the ranking of the "
            "fastest depended on them (points.csv's repeats_ok says how many each had)."
            if sweep.get("repeat_as_needed")
            else ""
        ),
        "",
        MEASURED_OVER,
        "",
    ]
    for _, group in groups:
        first = group.iloc[0]
        title = (
            f"{first['backbone']} at {first['input_size']}x{first['input_size']} on {first['backend']}, "
            f"{first['epochs']} epochs, "
            f"finetune {first['finetune']}, {first['interpolation']} resize"
            + (f", host {first['host']} (machine {first['machine']})" if "machine" in varying else "")
        )
        lines += [
            f"## {title}",
            "",
            _table(group, _time_cell),
            "",
            "CPU and GPU utilisation (mean over the measured window, p90), GPU memory peak:",
            "",
            _table(group, _util_cell),
            "",
        ]
    lines += sections.where_the_time_goes(points, sweep)
    lines += (
        []
        if not sections.trains_on_gpu(sweep)
        else sections.feed(points, env, "feed.png" if ("feeding the model", "feed.png") in figures else None)
    )
    lines += sections.backend_comparison(points)
    lines += sections.scaling(points)
    lines += sections.precision_gain(points)
    lines += sections.seed_section(points, sweep)
    fastest = verdicts.fastest(points)
    if fastest:
        lines += [
            "## Fastest",
            "",
            "Of the configurations a user can run (a pipeline feeding a model; not the ceilings):",
            "",
            fastest,
            "",
        ]
    lines += sections.time_spent(frame)
    warnings = cautions.noise_warnings(frame[frame.role == "point"], points) + cautions.short_ceilings(frame)
    warnings += [
        f"run {r['run_id']}: a sampler failed, its columns are empty: {r['sampler_error']}"
        for r in rows
        if r.get("sampler_error")
    ]
    if warnings:
        lines += ["## Noise", ""] + [f"- {w}" for w in warnings] + [""]
    lines += not_run(frame)
    lines += do_this(points, sweep) + ["## What the loader knobs mean", ""]
    for pipeline in sorted(points.pipeline.unique()):
        meaning = knob_meaning(pipeline)
        used = "; ".join(f"`{k}`: {v}" for k, v in meaning.items()) or "no loader knob applies"
        lines.append(f"- `{pipeline}`: {used}.")
    return "\n".join(lines) + "\n"


def superseded(points: pd.DataFrame, sweep: dict) -> set[str]:
    """The points the folder's last sweep did not plan (sweep.json's `planned`) that never ran (a
    failed setting the user then changed), and the ceilings that no point left needs: they stay
    in runs.jsonl and points.csv, and leave the report."""
    planned = set(sweep.get("planned") or ())
    if not planned or points.empty:
        return set()
    stale = set(points.point_id[(points.repeats_ok == 0) & ~points.point_id.isin(planned)])
    kept = points[(points.role == "point") & ~points.point_id.isin(stale)]
    bound = {c(spec_of(p)).point_id for p in records(kept) for c in (pipeline_ceiling, model_ceiling)}
    return stale | set(points.point_id[(points.role == "ceiling") & ~points.point_id.isin(bound | planned)])


def not_run(frame: pd.DataFrame) -> list[str]:
    """The runs that failed, a row each with its error on one line; the skipped ones apart, a line
    per reason (a skip is the sweep's choice, not a failure); no heading without runs under it."""
    lines = []
    name = [f"{setting(r)} b{r['batch']} {r['backbone']} r{r['repeat']}" for _, r in frame.iterrows()]
    frame = frame.assign(run=name, error=frame.get("error", pd.Series("", index=frame.index)).fillna(""))
    failed = frame[~frame.status.isin(["ok", "skipped"])]
    if len(failed):
        lines += ["## Failed runs", "", "| run | status | error |", "|---|---|---|"]
        for _, r in failed.iterrows():
            error = " ".join(str(r["error"]).split()).replace("|", "\\|")
            lines.append(f"| {r['run']} | {r['status']} | {error} |")
        lines.append("")
    skipped = frame[frame.status == "skipped"]
    if len(skipped):
        lines += ["## Skipped runs", ""]
        lines += [f"- {', '.join(group['run'])}: {reason}" for reason, group in skipped.groupby("error", sort=False)]
        lines.append("")
    return lines


def write(root: str | Path, run_id: str | None = None, plots: bool = True) -> Path:
    """report.md, after points.csv. Plots (about a second) are left out of the rewrite after
    each run of a sweep and drawn when it ends."""
    root = Path(root)
    every, rows, left_out = write_csv(root)
    stale = superseded(every, read_json(root / "sweep.json"))
    if stale:
        every, rows = every[~every.point_id.isin(stale)], [r for r in rows if r["point_id"] not in stale]
    figures = []
    if rows and plots:
        figures = _figures(root, every[every.role == "point"], rows, run_id)
    elif rows:  # keep the links to the figures the last full write drew
        figures = [(c, n) for n, c in {**FIGURES, "utilisation.png": DRAWN_BEFORE}.items() if (root / n).is_file()]
    path = root / "report.md"
    text = render(every, rows, read_json(root / "env.json"), read_json(root / "sweep.json"), figures, left_out, stale)
    profiled = traces.section(root, every)
    if profiled and not rows:
        text = text.replace("No runs yet.", "Only profiled runs, below: their rates are left out of the tables.")
    path.write_text("\n".join([text.rstrip("\n"), ""] + profiled).rstrip("\n") + "\n")
    return path


def _figures(root: Path, points: pd.DataFrame, rows: list[dict], run_id: str | None) -> list[tuple[str, str]]:
    """throughput.png, and utilisation.png for the chosen run (default: the fastest
    configuration's first good run)."""
    from bench.output import plots

    made = [
        (caption, name)
        for name, caption in FIGURES.items()
        if getattr(plots, name.removesuffix(".png"))(points, root / name)
    ]
    ok = runnable(points)
    ok = ok if len(ok) else points[points.repeats_ok > 0]  # a sweep of ceilings alone: its fastest run
    if len(ok):
        best = ok.loc[ok.train_img_s.idxmax()]
        run = run_id or next(r["run_id"] for r in rows if r["point_id"] == best.point_id and r["status"] == "ok")
        chosen = next(r for r in rows if r["run_id"] == run)
        title = f"{setting(chosen)} b{chosen['batch']} ({run})"
        if plots.utilisation(root / "samples" / f"{run}.csv", title, root / "utilisation.png"):
            made.append((f"CPU and GPU utilisation over {title}", "utilisation.png"))
    return made
