"""`make gpu-check`'s verdict on results folders measured on a GPU: every row trained on the GPU of
the label, the GPU was busy over the window, the model-alone points' datasheet MFU is plausible
(2% to 80%), and the label is what NVML saw. A figure NVML or the datasheets cannot give is not held
against a run: utilisation on a MIG slice, datasheet MFU for a GPU without a sheet or for an
arithmetic its sheet has no peak for. Each failure names its rows; exit status 1 on any. Run
against a folder measured on a CPU it fails, naming every row: the checks can fail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from bench.results import nvml, profiles
from bench.results.store import ResultStore, read_json
from bench.run import gate
from pipelines.registry import is_model_alone

MFU_RANGE = (0.02, 0.80)


def problems(folder: Path) -> list[str]:
    """One line per failed check of one results folder, each naming its rows."""
    label = read_json(folder / "sweep.json").get("gpu", "")
    env = read_json(folder / "env.json")
    rows = [r for r in ResultStore(folder).records() if r.get("status") == "ok"]
    found = []
    seen = nvml.label_of(
        nvml.visible(
            [{**g, "uuid": g.get("uuid", ""), "index": g.get("index", i)} for i, g in enumerate(env.get("gpus") or [])]
        )
    )
    if label != seen:
        found.append(f"{folder}: labelled {label!r}, NVML saw {seen!r} ({len(env.get('gpus') or [])} GPU(s))")
    if not rows:
        found.append(f"{folder}: no run ended ok")
    off = [
        r["run_id"]
        for r in rows
        if gate.contradiction(label, _facts(r.get("train_device", "")))
        or not str(r.get("train_device", "")).startswith("gpu:")
    ]
    if off:
        found.append(f"{folder}: train_device is not the {label} in {len(off)} row(s): {', '.join(off[:8])}")
    slice_ = "-mig-" in label  # NVML reports no utilisation for a MIG slice: an empty one is not idle
    idle = [r["run_id"] for r in rows if not _busy(r.get("gpu_util_mean"), may_be_missing=slice_)]
    if idle:
        found.append(
            f"{folder}: GPU utilisation over the window is 0 or empty in {len(idle)} row(s): {', '.join(idle[:8])}"
        )
    points = folder / "points.csv"
    if points.is_file():
        table = pd.read_csv(points)
        alone = table[table.pipeline.map(is_model_alone) & (table.get("role", "point") == "point")]
        mfu = pd.to_numeric(alone.get("mfu_datasheet", pd.Series(index=alone.index)), errors="coerce")
        sheet = profiles.load(label).get("peak_tflops", {})
        expected = alone.get("matmul_precision", pd.Series(index=alone.index)).map(lambda m: m in sheet)
        bad = alone[~mfu.between(*MFU_RANGE) & (mfu.notna() | expected)]
        if len(bad):
            found.append(
                f"{folder}: datasheet MFU of model-alone points outside {MFU_RANGE[0]:.0%}-{MFU_RANGE[1]:.0%} "
                f"(or missing) in {len(bad)} point(s): {', '.join(map(str, bad.point_id.head(8)))}"
            )
    return found


def _busy(util, may_be_missing: bool) -> bool:
    """Whether a row's GPU utilisation says the GPU worked: above 0, or missing where NVML gives none."""
    if util is None or util != util:
        return may_be_missing
    return util > 0


def _facts(train_device: str) -> dict:
    platform, _, names = train_device.partition(": ")
    return {"platform": platform, "devices": [n for n in names.split(", ") if n]}


def main(argv: list[str] | None = None) -> int:
    """python -m bench.gpucheck FOLDER...: the failures, one a line, or one line saying all held."""
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    found = [line for folder in folders for line in problems(folder)]
    for line in found:
        print(f"gpu-check: FAILED {line}", file=sys.stderr)
    if not found:
        print(f"gpu-check: every check held in {len(folders)} folder(s): " + json.dumps([str(f) for f in folders]))
    return 1 if found or not folders else 0


if __name__ == "__main__":
    sys.exit(main())
