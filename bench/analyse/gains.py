"""What changing one knob did, from the points table: scaling over devices and hosts, the gain of
mixed precision, the same configuration on each backend, the decode ceiling per input size; and
where each backend's wall time went. Each is a table of figures; the report formats them and
computes nothing."""

from __future__ import annotations

import pandas as pd

from bench.analyse.noise import differ, of_points
from bench.analyse.points import pairs
from bench.plan.backends import BACKENDS
from bench.plan.knobs import KNOBS


def configuration(points: pd.DataFrame, suffix: str = "") -> pd.Series:
    """'keras w4 threads q10 b8': a point's setting and batch (of its twin at base with `_base`)."""
    return points[f"setting{suffix}"] + " b" + points.batch.astype(str)


def _ends(frame: pd.DataFrame, column: str, suffix: str = "") -> tuple[pd.Series, pd.Series]:
    """A rate's repeats' lowest and highest (of the twin at base with `_base`), the median where
    no range was kept."""
    median = frame[column + suffix]
    low, high = (frame.get(f"{column}_{end}{suffix}", median).fillna(median) for end in ("min", "max"))
    return low, high


def scaling(points: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Points that differ from a twin only in `knob` (gpus or hosts, the twin at 1): images/s on N
    over N times images/s on one, its range over the repeats (the lowest over the highest and
    back), and by the noise rule whether it is below perfect (-1), above (+1) or within the noise
    of it (0). Empty where no twins."""
    twins = pairs(points, knob, 1) if knob in points else pd.DataFrame()
    if twins.empty:
        return pd.DataFrame()
    n = twins[knob]
    (low, high), (base_low, base_high) = _ends(twins, "train_img_s"), _ends(twins, "train_img_s", "_base")
    noise = of_points(points)
    geo, geo_base = (
        twins.get(f"train_img_s_geo{s}", twins[f"train_img_s{s}"]).fillna(twins[f"train_img_s{s}"])
        for s in ("", "_base")
    )
    return pd.DataFrame(
        {
            "configuration": configuration(twins, "_base"),
            "devices": twins.devices,
            "img_s_one": twins.train_img_s_base,
            "img_s": twins.train_img_s,
            "scaling": twins.train_img_s / (n * twins.train_img_s_base),
            "scaling_min": low / (n * base_high),
            "scaling_max": high / (n * base_low),
            "vs_perfect": [
                differ(a, r, b, r_base, noise, ratio=k)
                for a, r, b, r_base, k in zip(geo, twins.repeats_ok, geo_base, twins.repeats_ok_base, n)
            ],
        }
    )


def precision_gain(points: pd.DataFrame) -> pd.DataFrame:
    """Points under a mixed policy beside their float32 twin: images/s and the gain (their ratio)."""
    twins = pairs(points, "precision", "float32")
    if twins.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "configuration": configuration(twins, "_base"),
            "precision": twins.precision,
            "img_s_float32": twins.train_img_s_base,
            "img_s": twins.train_img_s,
            "gain": twins.train_img_s / twins.train_img_s_base,
        }
    )


def backends_side_by_side(points: pd.DataFrame) -> pd.DataFrame:
    """Images/s of each configuration measured on two backends or more: model, configuration, a
    column per backend (in BACKENDS' order) and the fastest. Empty where a sweep has one backend."""
    ok = points[points.repeats_ok > 0]
    if ok.backend.nunique() < 2:
        return pd.DataFrame()
    same = [k for k in KNOBS if k in ok.columns and k != "backend"]
    keyed = ok.assign(configuration=configuration(ok), model=ok.backbone + " " + ok.input_size.astype(str) + "px")
    table = keyed.astype({k: object for k in same}).pivot_table(
        index=same + ["model", "configuration"], columns="backend", values="train_img_s", dropna=False
    )
    table = table.dropna(thresh=2).reset_index()  # configurations measured on two backends or more
    if table.empty:
        return pd.DataFrame()
    backends = [b for b in BACKENDS if b in table]
    return table[["model", "configuration"] + backends].assign(fastest=table[backends].idxmax(axis=1))


def decode_ceilings(points: pd.DataFrame) -> pd.DataFrame:
    """Per input size and resize: one core's decode rate and all cores' (medians over the points),
    and the lowest and highest share of it the pipelines alone reached."""
    decoded = points.dropna(subset=["decode_ceiling_img_s"])
    if decoded.empty:
        return pd.DataFrame()
    return (
        decoded.groupby(["input_size", "interpolation"])
        .agg(
            core_img_s=("decode_core_img_s", "median"),
            all_cores_img_s=("decode_ceiling_img_s", "median"),
            efficiency_min=("pipeline_efficiency", "min"),
            efficiency_max=("pipeline_efficiency", "max"),
        )
        .reset_index()
    )


PHASES = {"startup_s": "start-up", "warmup_s": "warm-up", "window_s": "measured windows"}
# start-up's parts (bench/run/worker.py); the rest of it is a pipeline ceiling's decode probe
STARTUP_PARTS = {"import_s": "import", "device_s": "devices", "model_s": "model and data", "flops_s": "FLOP count"}


def time_spent(frame: pd.DataFrame) -> pd.DataFrame:
    """Per backend, where the runs' wall time went: start-up (process start to model built),
    warm-up (of which compile and loader start), the measured windows, and the rest (validation
    and checkpoints, sampler start, teardown), in minutes; a run's median start-up, its parts, and
    warm-up beyond compile (the fixed costs a faster start would cut); the runs forked from their
    backend's launcher; the runs compiled from the cache (a column left out where no run compiled:
    TensorFlow without XLA)."""
    rows = []
    for backend, runs in frame[frame.wall_s.notna()].groupby("backend"):
        known = runs.reindex(columns=["startup_s", "warmup_s", "window_s", "compile_s", "loader_start_s"]).fillna(0)
        row = {"backend": backend, "runs": len(runs), "wall (min)": runs.wall_s.sum() / 60}
        row.update({f"{label} (min)": known[column].sum() / 60 for column, label in PHASES.items()})
        row["of which compile (min)"] = known.compile_s.sum() / 60
        row["of which loader start (min)"] = known.loader_start_s.sum() / 60
        row["other (min)"] = row["wall (min)"] - sum(row[f"{label} (min)"] for label in PHASES.values())
        row["start-up a run (s, median)"] = known.startup_s.median()
        parts = runs.reindex(columns=list(STARTUP_PARTS)).dropna(axis=1, how="all")  # none before they were kept
        row.update({f"of which {STARTUP_PARTS[c]} (s, median)": parts[c].median() for c in parts})
        forked = runs.get("forked", pd.Series(dtype=object)).dropna()
        row["forked"] = f"{int(forked.astype(bool).sum())} of {len(runs)}" if len(forked) else ""
        row["warm-up beyond compile a run (s, median)"] = (known.warmup_s - known.compile_s).median()
        cached = runs.get("cache_hit", pd.Series(dtype=object)).dropna()
        row["compiled from cache"] = f"{int(cached.astype(bool).sum())} of {len(cached)}" if len(cached) else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in ("compiled from cache", "forked"):  # nothing compiled (TensorFlow without XLA), or runs of old
        if name in table and (table[name] == "").all():
            table = table.drop(columns=name)
    return table
