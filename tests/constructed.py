"""Results folders built from figures, as a sweep writes them (runs.jsonl, env.json, sweep.json,
points.csv), with nothing run: what the gate's tests compare through the command line in-process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from bench.analyse import points
from bench.plan.grid import model_ceiling, normalised, pipeline_ceiling
from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord
from bench.results.store import ResultStore

ENV = {"cpu": "Test CPU", "cpu_threads": 2, "gpus": [], "driver": "", "tensorflow": "2.21.0", "keras": "3.15.0",
       "python": "3.11.9", "gpubench": "0.1.0"}  # fmt: skip
CI = [("keras", 1), ("keras", 2), ("tfdata", 1), ("tfdata", 2)]  # the ci preset's four configurations


def spec(pipeline: str, workers: int, repeat: int = 0) -> RunSpec:
    """A point as a sweep's grid gives it (a knob its pipeline does not use blank)."""
    return normalised(
        RunSpec(backbone="tiny", input_size=16, batch=8, pipeline=pipeline, workers=workers, repeat=repeat)
    )


def noisy(rate: float, repeats: int, sd: float, seed: int) -> list[float]:
    """`repeats` rates of geometric mean `rate` exactly, spread `sd` on the log scale."""
    logs = np.random.default_rng(seed).normal(0, sd, repeats)
    return list(rate * np.exp(logs - logs.mean()))


def row(s: RunSpec, rate: float | None, **figures) -> dict:
    """A run's row: `rate` images/s (None: failed), a window of 1,000 images, `figures` as given."""
    times = {"total_s": 1000 / rate + 5, "first_epoch_s": 300 / rate + 3, "epoch_s_median": 250 / rate} if rate else {}
    return RunRecord.for_spec(
        s,
        status="ok" if rate else "error",
        error="" if rate else "boom",
        train_img_s=rate,
        epochs_timed=3,
        train_images_per_epoch=250,
        **{**times, **figures},
    ).to_dict()


def folder(path: Path, rates: dict, env: dict = ENV, ceilings: dict | None = None, per_run=None, **figures) -> Path:
    """A results folder: `rates` {(pipeline, workers): [images/s of each repeat]}; `ceilings`
    {(pipeline, workers): ([pipeline-alone rates], [model-alone rates])}; `per_run(config, repeat)`:
    figures of one run (its times); `figures`: the same in every row."""
    path = Path(path)
    store = ResultStore(path).create()
    for (pipeline, workers), values in rates.items():
        for repeat, rate in enumerate(values):
            more = per_run((pipeline, workers), repeat) if per_run else {}
            store.append(row(spec(pipeline, workers, repeat), rate, **{**figures, **more}))
    for (pipeline, workers), (alone, model) in (ceilings or {}).items():
        point = spec(pipeline, workers)
        for probe, values in ((pipeline_ceiling(point), alone), (model_ceiling(point), model)):
            for repeat, rate in enumerate(values):
                store.append(row(dataclasses.replace(probe, repeat=repeat), rate, **figures))
    (path / "env.json").write_text(json.dumps(env))
    (path / "sweep.json").write_text(json.dumps({"gpu": "cpu", "preset": "ci", "data": str(path / "data")}))
    points.write_csv(path)
    return path


def ci_rates(scale: dict | None = None, sd: float = 0.03, repeats: int = 6, seed: int = 0) -> dict:
    """The ci preset's four configurations at 200-400 images/s, each times `scale[config]` (1 where
    not given), `repeats` runs of spread `sd`."""
    base = {("keras", 1): 200.0, ("keras", 2): 300.0, ("tfdata", 1): 250.0, ("tfdata", 2): 400.0}
    return {c: noisy(r * (scale or {}).get(c, 1.0), repeats, sd, seed + i) for i, (c, r) in enumerate(base.items())}
