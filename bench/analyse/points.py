"""Rows to points: the one place that turns a folder's runs into configurations.

A point is one knob combination: the median of its repeats that succeeded and their spread, its
two ceilings (the pipeline alone, the model alone), its bound and efficiency, its decode
ceiling, TFLOP/s and MFU. points.csv is this table; the report, compare, machines and export
read and format it, and compute nothing of their own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bench.analyse.bounds import BUSY_PCT, judge
from bench.analyse.noise import geomean, pooled
from bench.plan.grid import model_ceiling, pipeline_ceiling
from bench.plan.knobs import COLUMN_KNOBS, KNOBS, RunSpec, display, plain
from bench.results import profiles
from bench.results.record import others_share
from bench.results.store import ResultStore, read_json
from models import is_pipeline_alone
from pipelines.registry import TAKEN_BY_SOME, batches_itself, is_model_alone

SHORT_S = 2.0  # seconds of measured window below which a run is too short to time well
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
    "import_s",
    "device_s",
    "model_s",
    "flops_s",
    "warmup_s",
    "compile_s",
    "loader_start_s",
    "window_s",
    "window_steps",
    "others_cpu_pct",
]


def setting(row: dict) -> str:
    """'keras w32 mp q20' style name of a row's column-knob values (empty ones left out): the
    loader and device setting a report's column stands for."""
    return display(row, COLUMN_KNOBS)


def records(frame: pd.DataFrame) -> list[dict]:
    """frame.to_dict("records"), the same values (Python's floats, ints, bools) in a sixth of its time on
    a wide table, each block converted once: the noise rule reads every point's row after each pass."""
    columns = list(frame.columns)
    return [dict(zip(columns, row)) for row in frame.to_numpy(dtype=object).tolist()]


def spec_of(row: dict) -> RunSpec:
    """The RunSpec of a stored row, its values as set (bench/plan/knobs.py `plain`); the batch blank again
    where a user's pipeline makes its own (a table shows the size it made)."""
    spec = RunSpec(**{k: plain(row[k]) for k in KNOBS if k in row})
    return dataclasses.replace(spec, batch=None) if batches_itself(spec.shaped_by or spec.pipeline) else spec


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
    only_some = TAKEN_BY_SOME if knob == "pipeline" else ()  # blank where they do not apply
    others = [k for k in KNOBS if k in ok.columns and k != knob and k not in only_some]
    at_base, changed = ok[ok[knob] == base], ok[ok[knob] != base]
    if at_base.empty or changed.empty:
        return pd.DataFrame()
    return changed.astype({k: object for k in others}).merge(
        at_base.astype({k: object for k in others}), on=others, suffixes=("", "_base")
    )


def quiet_runs(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(the runs without those measured while other work took more than BUSY_PCT of the CPU, where
    their point has a quieter run that succeeded; how many each point had set aside): a look taken
    again under less load replaces the loaded one, and a point measured only under load keeps its runs
    (its bound is then withheld, with the load said)."""
    busy = (frame.status == "ok") & (frame.others_cpu_pct > BUSY_PCT)
    quiet_ok = frame[(frame.status == "ok") & ~busy].point_id.unique()
    dropped = busy & frame.point_id.isin(quiet_ok)
    return frame[~dropped], frame[dropped].point_id.value_counts().to_dict()


def medians(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per point: the median of its ok repeats, their range and spread, the status of
    its latest repeat, sorted by setting."""
    ok = frame[frame.status == "ok"]
    numeric = [c for c in NUMERIC if c in frame]
    # as floats: a column with a missing figure reads as objects, whose median pandas takes 16x slower
    middle = ok[numeric].apply(pd.to_numeric, errors="coerce").groupby(ok.point_id).median()
    for column in ("train_img_s", "total_s"):
        values = ok.groupby("point_id")[column]
        middle[f"{column}_min"], middle[f"{column}_max"] = values.min(), values.max()
    middle["spread"] = (middle.train_img_s_max - middle.train_img_s_min) / middle.train_img_s
    middle["train_img_s_geo"] = ok.groupby("point_id").train_img_s.agg(geomean)  # what the noise rule compares
    latest = frame.drop_duplicates("point_id", keep="last").set_index("point_id")
    points = latest.drop(columns=numeric).join(middle)
    points["repeats_ok"] = ok.groupby("point_id").size().reindex(points.index).fillna(0).astype(int)
    order = [k for k in COLUMN_KNOBS if k in points]
    points["setting"] = [setting(r) for r in records(points[order])]
    # one block per column: the columns added one by one above and by table() fragment the frame
    return points.sort_values(order, na_position="first", kind="stable").reset_index().copy()


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
    frame = pd.DataFrame(rows)
    # as floats: the columns of runs too short to sample hold None, which numpy warns about
    sampled = (
        pd.to_numeric(frame.get(c, float("nan")), errors="coerce") for c in ("cpu_util_mean", "proc_cpu_pct_mean")
    )
    frame["others_cpu_pct"] = others_share(*sampled, env.get("cpu_threads"))
    frame, set_aside = quiet_runs(frame)
    points = medians(frame)
    points["runs_set_aside"] = points.point_id.map(set_aside).fillna(0).astype(int)
    if "host_batch" in points:  # a pipeline that makes its own batches: the size it made, for every reader
        batch = points.batch.fillna(points.host_batch * points.get("hosts", 1))
        whole = batch.notna().all() and (batch % 1 == 0).all()  # the blanks filled: 24, not 24.0, in every label
        points["batch"] = batch.astype(int) if whole else batch
    decode = dict(zip(points.point_id, points.get("decode_img_s_core", pd.Series(dtype=float))))
    first = {r["point_id"]: r for r in rows}
    pipeline_ids, model_ids = [], []
    for pid in points.point_id:
        spec = spec_of(first[pid])
        pipeline_ids.append(None if is_model_alone(spec.pipeline) else pipeline_ceiling(spec).point_id)
        model_ids.append(None if is_pipeline_alone(spec.backbone) else model_ceiling(spec).point_id)
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
    noise = pooled(frame)._replace(family=max(2 * len(runnable(points)), 1))
    points["noise_sd"], points["noise_df"], points["noise_family"] = noise.sd, noise.df, noise.family
    judged = pd.DataFrame([judge(p, noise) for p in records(points)], index=points.index)
    points[["bound", "efficiency", "bound_doubt", "bound_note", "bound_says"]] = judged
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
    said = {"bound_doubt": "", "bound_note": "", "bound_says": ""}  # read as text: a column of blanks is not numbers
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dict.fromkeys(said, str)).fillna(said)
