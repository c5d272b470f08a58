"""The 2019 seed's figures, put beside the measured ones where a sweep ran the same thing (the report's
section formats them: bench/output/sections.py)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

SEED_CSV = Path(__file__).resolve().parents[2] / "results" / "reference" / "seed-2019.csv"
LOADER_KEYS = ["batch", "workers", "use_multiprocessing", "max_queue_size", "gpus"]
# What the seed timed: anything else makes its totals a different workload.
SEED_WORKLOAD = {"backbone": "vgg16", "input_size": 224, "epochs": 20, "checkpoint": True}
SEED_IMAGES = (148, 30)


def load_seed() -> pd.DataFrame:
    """The seed's 2019 figures, or an empty table where the checkout lacks them."""
    return pd.read_csv(SEED_CSV) if SEED_CSV.is_file() else pd.DataFrame()


def _differences(points: pd.DataFrame, sweep: dict) -> list[str]:
    """How this sweep's workload differs from the seed's (empty when it is the same)."""
    found = []
    for knob, value in SEED_WORKLOAD.items():
        other = sorted(set(points[knob]) - {value}, key=str)
        if other:
            found.append(f"{knob} {', '.join(map(str, other))} (the seed: {value})")
    images = (sweep.get("train_images"), sweep.get("val_images"))
    if images != SEED_IMAGES:
        found.append(f"{images[0]} + {images[1]} images (the seed: {SEED_IMAGES[0]} + {SEED_IMAGES[1]})")
    return found


def matches(points: pd.DataFrame, seed: pd.DataFrame) -> pd.DataFrame:
    """The measured keras points joined to the seed's runs with the same loader knobs."""
    keras_points = points[(points.pipeline == "keras") & (points.repeats_ok > 0)]
    if seed.empty or keras_points.empty:
        return pd.DataFrame()
    keys = keras_points[LOADER_KEYS].astype(object)
    seed = seed.rename(columns={"machine": "seed_machine"})  # a run's `machine` is its fingerprint
    return keras_points.assign(**{k: keys[k] for k in LOADER_KEYS}).merge(
        seed.astype({k: object for k in LOADER_KEYS}), on=LOADER_KEYS, suffixes=("", "_seed")
    )


def seed_figure(point: pd.Series, sweep: dict, seed: pd.DataFrame | None = None) -> tuple[float, str] | None:
    """The seed's fastest total for this point's settings and its machine, or None."""
    matched = matches(point.to_frame().T, load_seed() if seed is None else seed)
    if matched.empty or _differences(matched, sweep):
        return None
    best = matched.loc[pd.to_numeric(matched.total_s_seed).idxmin()]
    return float(best.total_s_seed), str(best.seed_machine)


class BesideSeed(NamedTuple):
    """The measured keras points beside the seed's runs with the same loader knobs: how this sweep's
    workload differs from the seed's (empty: the totals compare), whether the seed ran on this GPU
    label (then only those runs are kept), and each pairing's figures."""

    differences: list[str]
    same_gpu: bool
    label: str
    matched: pd.DataFrame  # a row per pairing: the point's columns, the seed's with _seed, speed_up


def beside_seed(points: pd.DataFrame, sweep: dict, seed: pd.DataFrame | None = None) -> BesideSeed | None:
    """The comparison with the seed, or None when no point has the seed's loader knobs."""
    seed = load_seed() if seed is None else seed
    matched = matches(points, seed)
    if matched.empty:
        return None
    label = sweep.get("gpu", "")
    same_gpu = label in set(seed.gpu_label)
    if same_gpu:
        matched = matched[matched.gpu_label == label]
    matched = matched.assign(
        speed_up=matched.total_s_seed / matched.total_s,
        val_checkpoint_s=matched.val_s_total + matched.checkpoint_s_total,
    )
    return BesideSeed(_differences(matched, sweep), same_gpu, label, matched)
