"""The gate's rule as functions of arrays, one configuration an element: what compare applies to a
table (bench/analyse/regressions.py), the gate's loop to its rounds (bench/regress.py) and the
simulation of the whole gate to thousands of gates at once (tests/test_gate_simulation.py)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from bench.analyse.noise import CONFIDENCE, Noise


def margins(sd, df, variance):
    """noise.margin for arrays: how far apart two log figures must be for a claim, at CONFIDENCE,
    `variance` in runs' units (1/n_a + 1/n_b for two means)."""
    return special.stdtrit(df, CONFIDENCE) * np.asarray(sd) * np.sqrt(variance)


def decide(change, margin, factor: float, drop: float, scale: float = 1.0) -> np.ndarray:
    """Each configuration's verdict from its log change (positive: better) and margin: "regression"
    (worse than `factor` beyond the noise), "better", "pass" (a `drop` ruled out beyond the noise) or
    "undecided". `scale` shrinks the lines where a configuration is read against its run's geometric
    mean (a change of one of K is 1 - 1/K of itself there)."""
    line = scale * math.log(factor)
    cases = [change < -line - margin, change > line + margin, change > scale * math.log(1 - drop) + margin]
    return np.select(cases, ["regression", "better", "pass"], "undecided")


def against_run(change, variance):
    """(change, variance, scale) of each configuration read against the geometric mean of its run's
    configurations (the last axis): log x_k - mean log x is linear, so it applies to the change of
    current over baseline and to its variance alike; a change of one of K is 1 - 1/K of itself there."""
    k = np.shape(change)[-1]
    weights = np.eye(k) - 1 / k
    return change @ weights.T, variance @ (weights**2).T, 1 - 1 / k


def next_repeats(repeats, max_repeats: int):
    """The repeats an undecided configuration is measured to next: half as many again, at most
    `max_repeats` (6 -> 9 -> 12)."""
    repeats = np.asarray(repeats)
    return np.minimum(max_repeats, repeats + np.maximum(1, repeats // 2))


def repeats_to_decide(noise: Noise, base_variance: float, width: float) -> tuple[int, int] | None:
    """(current repeats, baseline repeats or 0 for those it has) at which the regression line and the
    pass line can no longer both miss a configuration (their margins together under `width`, the
    log distance between them); None past 64."""
    for n in range(1, 65):
        if 2 * margins(noise.sd, noise.df, base_variance + 1 / n) < width:
            return n, 0
    for n in range(1, 65):
        if 2 * margins(noise.sd, noise.df, 2 / n) < width:
            return n, n
    return None
