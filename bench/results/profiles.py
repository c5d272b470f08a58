"""Datasheet figures of known GPUs (bench/results/profiles/<label>.toml): memory, peak FLOP/s per
arithmetic (float32, tf32, float16, bfloat16: the math a run's convolutions ran in, its
matmul_precision), board power and an indicative price. A label with no profile works with the
measured figures alone."""

from __future__ import annotations

import tomllib
from pathlib import Path

PROFILE_DIR = Path(__file__).parent / "profiles"


def load(label: str) -> dict:
    """The datasheet of the GPU `label` names (memory, board power, peak TFLOP/s, an indicative price), or {}
    for one not known: what MFU and the machines report hold figures against."""
    path = PROFILE_DIR / f"{label}.toml"
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def missing(label: str) -> list[str]:
    """The GPUs of `label` ('l4', 'h100_2080ti') without a datasheet here: their runs are held against
    the peak measured on them alone, with no datasheet MFU and no price. A MIG slice's sheet would be
    its card's, which is not the slice's (none is missing for it); 'cpu' has no sheet to miss."""
    return [
        p
        for p in label.split("_")
        if p and p != "cpu" and "-mig-" not in p and not (PROFILE_DIR / f"{p}.toml").is_file()
    ]
