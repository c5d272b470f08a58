"""Rows to points: the one place that turns a folder's runs into configurations.

A point is one knob combination: the median of its repeats that succeeded and their spread, its
two ceilings (the pipeline alone, the model alone), its bound and efficiency, its decode
ceiling, TFLOP/s and MFU. points.csv is this table; the report, compare, machines and export
read and format it, and compute nothing of their own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyse.noise import PRIOR, Noise, differ, geomean, pooled
from bench.plan.grid import model_ceiling, pipeline_ceiling
from bench.plan.knobs import COLUMN_KNOBS, KNOBS, RunSpec, display, plain
from bench.results import profiles
from bench.results.store import ResultStore, read_json
from models import is_pipeline_alone
from pipelines.registry import is_model_alone

AT_CEILING = 0.8  # a training rate at 80% or more of its lower ceiling is at that ceiling
SHORT_S = 2.0  # seconds of measured window below which a run is too short to time well
# Other work's share of the CPU (percentage points) by which a point and its lower ceiling may differ
# before their rates are said to be measured under different load.
LOAD_GAP = 20.0
# Figures whose median over the repeats is the point's.
NUMERIC = [
    "total_s",
    "train_img_s",
    "first_epoch_s",
    "epoch_s_median",
    "val_s_total",
    "checkpoint_s_total",
    "cpu_util_mean",
    "cpu_util_p90",
    "proc_cpu_pct_mean",
    "gpu_util_mean",
    "gpu_util_p90",
    "gpu_mem_peak_mb",
    "data_wait_frac",
    "epoch_start_s_median",
    "train_gflops_per_image",
    "decode_img_s_core",
    "gpu_power_w_mean",
    "gpu_energy_j",
    "img_per_joule",
    "wall_s",
    "startup_s",
    "warmup_s",
    "compile_s",
    "loader_start_s",
    "window_s",
    "window_steps",
]


def setting(row: dict) -> str:
    """'keras w32 mp q20' style name of a row's column-knob values (empty ones left out): the
    loader and device setting a report's column stands for."""
    return display(row, COLUMN_KNOBS)


def spec_of(row: dict) -> RunSpec:
    """The RunSpec of a stored row, its values as set (bench/plan/knobs.py `plain`)."""
    return RunSpec(**{k: plain(row[k]) for k in KNOBS if k in row})


def rate_of(p: dict, prefix: str) -> tuple[float, int]:
    """(the geometric mean of a rate's ok repeats, how many): what the noise rule compares."""
    geo = p.get(f"{prefix}_geo")
    n = p.get("repeats_ok" if prefix == "train_img_s" else f"{prefix.split('_')[0]}_repeats")
    return (p[prefix] if pd.isna(geo) else geo), (1 if pd.isna(n) else int(n))


def bound(p: dict, noise: Noise = PRIOR) -> tuple[str | None, float | None, str]:
    """(bound, efficiency, why it is withheld or ''), by the noise rule (bench/analyse/noise.py).

    The lower ceiling is the pipeline's (input) or the model's (compute) where the two differ
    beyond the noise, and `balanced` where they do not; end to end is at that ceiling unless it is
    below AT_CEILING of it beyond the noise (overhead must be shown). Withheld only where the
    figures contradict (end to end above its lower ceiling beyond the noise: a measurement to fix)
    or where the point and its ceiling ran under different load."""
    sides = _sides(p, noise)
    if sides is None:
        return None, None, ""
    kind, which, efficiency, beyond, at_line = sides
    load = _load_gap(p, which)
    if beyond > 0:
        cause = load or "the ceiling and the point measured apart (a warm cache, clocks, load between runs)"
        return (
            kind,
            efficiency,
            (
                f"inconsistent measurement: {p['train_img_s']:.0f} images/s end to end is "
                f"{efficiency:.2f}x the {which}-alone ceiling of "
                f"{p['train_img_s'] / efficiency:.0f}, beyond the noise ({noise.says()}); "
                f"likely cause: {cause}"
            ),
        )
    return (kind if at_line >= 0 else "overhead"), efficiency, f"measured under different load: {load}" if load else ""


def look_again(p: dict, noise: Noise) -> str | None:
    """The lower ceiling ('pipeline' or 'model') where one more look at it and the point could change
    the verdict: under AT_CEILING of it within the noise (overhead not shown), or above it beyond the
    noise (a measurement to fix); else None."""
    sides = _sides(p, noise)
    return sides[1] if sides is not None and (sides[2] < AT_CEILING and sides[4] == 0 or sides[3] > 0) else None


def _sides(p: dict, noise: Noise) -> tuple[str, str, float, int, int] | None:
    """(input, compute or balanced; the lower ceiling's name; efficiency; end to end against that
    ceiling and against AT_CEILING of it, by differ), None without both ceilings."""
    if any(pd.isna(p.get(c)) or not p.get(c) for c in ("train_img_s", "pipeline_img_s", "model_img_s")):
        return None
    (t, nt), (pl, npl), (m, nm) = rate_of(p, "train_img_s"), rate_of(p, "pipeline_img_s"), rate_of(p, "model_img_s")
    order = differ(pl, npl, m, nm, noise)
    lower, n_lower, which = (pl, npl, "pipeline") if pl <= m else (m, nm, "model")
    return (
        "input" if order < 0 else "compute" if order > 0 else "balanced",
        which,
        p["train_img_s"] / min(p["pipeline_img_s"], p["model_img_s"]),
        differ(t, nt, lower, n_lower, noise),
        differ(t, nt, lower, n_lower, noise, ratio=AT_CEILING),
    )


def _load_gap(p: dict, which: str) -> str:
    """Where other work took the CPU in different shares while a point and its lower ceiling ran, in words."""
    mine, theirs = p.get("others_cpu_pct"), p.get(f"{which}_others_cpu_pct")
    if pd.isna(mine) or pd.isna(theirs) or abs(mine - theirs) <= LOAD_GAP:
        return ""
    return f"other work took {mine:.0f}% of the CPU during the point and {theirs:.0f}% during its {which}-alone ceiling"


def runnable(points: pd.DataFrame) -> pd.DataFrame:
    """Configurations a user can run and that ran: grid points fed by a pipeline into a model,
    not ceilings, the synthetic feed or the null model."""
    return points[
        (points.get("role", "point") == "point")
        & (points.repeats_ok > 0)
        & ~points.pipeline.map(is_model_alone)
        & ~points.backbone.map(is_pipeline_alone)
    ]


def pairs(points: pd.DataFrame, knob: str, base) -> pd.DataFrame:
    """Points whose `knob` differs from `base`, each joined to its twin at `base` (all other
    knobs equal); the twin's columns end in `_base`."""
    ok = points[points.repeats_ok > 0]
    only_some = ("use_multiprocessing", "cache") if knob == "pipeline" else ()  # blank where they do not apply
    others = [k for k in KNOBS if k in ok.columns and k != knob and k not in only_some]
    at_base, changed = ok[ok[knob] == base], ok[ok[knob] != base]
    if at_base.empty or changed.empty:
        return pd.DataFrame()
    return changed.astype({k: object for k in others}).merge(
        at_base.astype({k: object for k in others}), on=others, suffixes=("", "_base")
    )


def medians(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per point: the median of its ok repeats, their range and spread, the status of
    its latest repeat, sorted by setting."""
    ok = frame[frame.status == "ok"]
    numeric = [c for c in NUMERIC if c in frame]
    middle = ok.groupby("point_id")[numeric].median()
    for column in ("train_img_s", "total_s"):
        values = ok.groupby("point_id")[column]
        middle[f"{column}_min"], middle[f"{column}_max"] = values.min(), values.max()
    middle["spread"] = (middle.train_img_s_max - middle.train_img_s_min) / middle.train_img_s
    middle["train_img_s_geo"] = ok.groupby("point_id").train_img_s.agg(geomean)  # what the noise rule compares
    latest = frame.drop_duplicates("point_id", keep="last").set_index("point_id")
    points = latest.drop(columns=numeric).join(middle)
    points["repeats_ok"] = ok.groupby("point_id").size().reindex(points.index).fillna(0).astype(int)
    points["setting"] = [setting(r) for r in points.to_dict("records")]
    order = [k for k in COLUMN_KNOBS if k in points]
    return points.sort_values(order, na_position="first", kind="stable").reset_index()


def _peak(peaks: dict, backend: str, precision: str):
    """sweep.json's peak of this backend and precision (sweeps before backends were a knob
    kept one per precision, measured on TensorFlow)."""
    mine = peaks.get(backend)
    return mine.get(precision) if isinstance(mine, dict) else peaks.get(precision)


def table(rows: list[dict], env: dict, sweep: dict, envs: dict | None = None) -> pd.DataFrame:
    """Every point of the rows, ceiling probes included (role), with its ceilings, bound,
    efficiency, decode ceiling, TFLOP/s and MFU; the rows of each machine apart (a fleet sweep's
    jobs run on several), each with its own env.json (`envs`: machine -> env, else `env`)."""
    machines = sorted({row.get("machine") or "" for row in rows})
    if len(machines) > 1:
        return pd.concat(
            [
                table([r for r in rows if (r.get("machine") or "") == m], (envs or {}).get(m, env), sweep)
                for m in machines
            ],
            ignore_index=True,
        )
    points = medians(pd.DataFrame(rows))
    decode = dict(zip(points.point_id, points.get("decode_img_s_core", pd.Series(dtype=float))))
    first = {r["point_id"]: r for r in rows}
    pipeline_ids, model_ids = [], []
    for pid in points.point_id:
        spec = spec_of(first[pid])
        pipeline_ids.append(None if is_model_alone(spec.pipeline) else pipeline_ceiling(spec).point_id)
        model_ids.append(None if is_pipeline_alone(spec.backbone) else model_ceiling(spec).point_id)
    # the share of the machine's CPU that other work took during the window: the whole machine's
    # use less the run's own process tree (one core is 100%), over its threads
    points["others_cpu_pct"] = (points.cpu_util_mean - points.proc_cpu_pct_mean / (env.get("cpu_threads") or 1)).clip(
        lower=0
    )
    for column in (
        "train_img_s_min",
        "train_img_s_max",
        "train_img_s_geo",
        "window_s",
        "repeats_ok",
        "others_cpu_pct",
        "train_img_s",
    ):  # the last: pipeline_img_s and model_img_s, the ceilings' rates
        by_id = dict(zip(points.point_id, points.get(column, pd.Series(float("nan"), index=points.index))))
        name = {"repeats_ok": "repeats"}.get(column, column.replace("train_img_s", "img_s"))
        points[f"pipeline_{name}"] = [by_id.get(i) for i in pipeline_ids]
        points[f"model_{name}"] = [by_id.get(i) for i in model_ids]
    # every configuration's bound is two claims of the sweep's family, input and compute (bench/analyse/noise.py)
    noise = pooled(pd.DataFrame(rows))._replace(family=max(2 * len(runnable(points)), 1))
    points["noise_sd"], points["noise_df"], points["noise_family"] = noise.sd, noise.df, noise.family
    verdicts = [bound(p, noise) for p in points.to_dict("records")]
    points["bound"] = [b for b, _, _ in verdicts]
    points["efficiency"] = [e for _, e, _ in verdicts]
    points["bound_doubt"] = [d for _, _, d in verdicts]
    points["decode_core_img_s"] = [decode.get(i, float("nan")) if i else float("nan") for i in pipeline_ids]
    # one core's decode rate times the physical cores (a hyper-thread adds little to decoding)
    points["decode_ceiling_img_s"] = points.decode_core_img_s * (env.get("cpu_cores") or env.get("cpu_threads") or 1)
    # a cached pipeline decodes each image once, not every epoch: no decode ceiling bounds it
    cached = points.get("cache", pd.Series(index=points.index, dtype=object)).fillna(False).astype(bool)
    points["pipeline_efficiency"] = (points.pipeline_img_s / points.decode_ceiling_img_s).mask(cached)
    points["val_checkpoint_s"] = points.val_s_total + points.checkpoint_s_total.fillna(0)  # after each window
    points["model_share"] = points.train_img_s / points.model_img_s  # how much of the model's rate it was fed
    # the CPU cores, in all, that decode at one core's rate to keep the model fed (model images/s
    # over it): the whole run's, over all its devices; per device it is cores_to_feed / device_count
    points["cores_to_feed"] = points.model_img_s / points.decode_core_img_s
    points["device_count"] = device_count(points)
    points["achieved_tflops"] = points.train_img_s * points.get("train_gflops_per_image", float("nan")) / 1000
    # MFU is per device: the whole run's TFLOP/s over the peak of all its devices (the probe's and
    # the datasheet's peaks are one device's)
    peaks = sweep.get("peak_tflops") or {}
    points["peak_tflops"] = [_peak(peaks, b, p) for b, p in zip(points.backend, points.precision)]
    points["mfu"] = points.achieved_tflops / (pd.to_numeric(points.peak_tflops) * points.device_count)
    datasheet = profiles.load(sweep.get("gpu", "")).get("peak_tflops", {})
    points["mfu_datasheet"] = (
        points.achieved_tflops
        / points.device_count
        / pd.to_numeric(pd.Series([datasheet.get(m) for m in points.matmul_precision], index=points.index, dtype=float))
    )
    return points


def device_count(points: pd.DataFrame) -> pd.Series:
    """The devices a point trained on: its GPUs (or CPU devices) on each of its hosts."""

    def knob(name):
        return pd.to_numeric(points.get(name, pd.Series(1, index=points.index)), errors="coerce").fillna(1)

    return (knob("gpus") * knob("hosts")).astype(int)


def current_rows(root: Path) -> tuple[list[dict], int]:
    """(the newest row of each run measured by the code of the folder's env.json, on its machine
    or, for a fleet sweep, on its jobs' machines, or not stamped (rows from before stamps); how many
    rows of other machines or commits the folder keeps besides)."""
    from bench.results.machine import identity

    rows = ResultStore(root).latest()
    env = read_json(root / "env.json")
    if not env:
        return rows, 0
    mine, fleet = identity(env), set(machine_envs(root))
    kept = [
        r
        for r in rows
        if not r.get("machine") or (r.get("commit") == mine["commit"] and r["machine"] in {mine["machine"], *fleet})
    ]
    return kept, len(rows) - len(kept)


def machine_envs(root: Path) -> dict:
    """machine fingerprint -> the env.json its jobs wrote (env-<machine>.json), for fleet sweeps."""
    return {path.stem.removeprefix("env-"): read_json(path) for path in root.glob("env-*.json")}


def write_csv(root: str | Path) -> tuple[pd.DataFrame, list[dict], int]:
    """points.csv of a results folder, from its current rows: (the table it holds, and
    current_rows' rows and count left out, read once for the callers that format them too)."""
    root = Path(root)
    rows, left_out = current_rows(root)
    rows = [r for r in rows if not r.get("profiled")]  # profiling slows what it measures
    points = (
        table(rows, read_json(root / "env.json"), read_json(root / "sweep.json"), machine_envs(root))
        if rows
        else pd.DataFrame()
    )
    points.to_csv(root / "points.csv", index=False)
    return points, rows, left_out


def fed_points(points: pd.DataFrame) -> pd.DataFrame:
    """The points a pipeline fed, with the model's rate alone beside them: the feed table's rows."""
    return points[~points.pipeline.map(is_model_alone) & points.model_img_s.notna() & (points.repeats_ok > 0)]


def read(root: str | Path) -> pd.DataFrame:
    """A folder's points.csv."""
    if not (Path(root) / "points.csv").is_file():
        raise FileNotFoundError(f"{Path(root)} has no points.csv: not a finished results folder")
    return read_csv(Path(root) / "points.csv")


def read_csv(path: str | Path) -> pd.DataFrame:
    """A points table from CSV, only an empty cell missing (pandas reads `null`, "None", "NA" as NaN); a
    blank doubt is '' (the bound stands), as points.table gives it, not a NaN that every reader must test."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).fillna({"bound_doubt": ""})
