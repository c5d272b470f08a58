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
