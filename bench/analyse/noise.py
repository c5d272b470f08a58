"""The one confidence rule every verdict uses: the bound, the fastest setting, the setting that
changed most, compare's better and worse, the tuner's kept change.

Rates are compared on a log scale (a noise of 8% is 8% at any rate). The noise is the spread of the
repeats, pooled over every point of the folder: on one machine in one sweep the points share
their noise (load, clocks, caches), so twelve points of two repeats give twelve degrees of freedom
where each alone gives one. A difference is claimed when it stands outside a one-sided interval
at CONFIDENCE on each side; claims made together (a sweep's bounds, a tuner's walk) share that
rate, Bonferroni's way (Noise.family), so that the sweep or the walk as a whole keeps it, its
repeats as needed and looks included (tests/sweep_sim.py and tests/walk_sim.py simulate the whole
procedure with these functions). Where no point has two repeats
there is no measured spread: PRIOR_SD stands in, and every verdict says it was assumed.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special  # the quantiles scipy.stats gives, without its import's 0.7 s in every process

# One-sided, each way. A verdict the noise cannot settle at the preset's repeats gets one more
# (bench/session.py), a second look. A two-point comparison, noise pooled over 12 points of 8%,
# 2 repeats then a third where needed, 3,000 simulated sweeps: 4.0% claimed where nothing differs,
# 96.2% found at 30%; 97.5% would claim 7.7%, 99% find 94.5%. The bounds of a whole sweep, each
# side of each configuration's at 1 - 1.5% / (2 x configurations), simulated with the sweep's own
# passes, repeats as needed (up to 5, then one more look) and final table (tests/sweep_sim.py, 8%
# noise, 100 sweeps): equal ceilings named a bound for 0.2% of quick's configurations, in 3.0% of
# its sweeps (mine: 0.1%, 1.0%); ceilings 30% apart found for 98.6% (mine: 98.9%); a setting 30%
# faster named fastest in 100%, a wrong one in 0%. At 15% noise, 30% apart is found for 47% (43%).
CONFIDENCE = 0.985
# The log-rate spread assumed without repeats. Pooled spreads of the reference sweeps on the 2-core
# CPU machine (results/reference/cpu, `noise.pooled` of each runs.jsonl): quick 8.0% when its
# repeats ran back to back, 17.5% and 22.4% interleaved pass by pass with other work coming and going
# (quick, tune-vs-grid/grid), hosts 11%, loaders 16%, ci 21% (smoke-backends, windows under a second:
# 44%). About the upper of them: a claim on one repeat then needs a 1.7x difference.
PRIOR_SD = 0.20


class Noise(NamedTuple):
    """The spread of one run's log rate (sd), the degrees of freedom behind it (inf: assumed), and
    how many claims of one kind are made together (a sweep's bounds: input or compute for each
    configuration; a tuner's walk: its changes): each is then made at 1 - (1 - CONFIDENCE) / family,
    Bonferroni's way, so that the family as a whole keeps the rate of one."""

    sd: float
    df: float
    family: int = 1

    @property
    def measured(self) -> bool:
        return math.isfinite(self.df)

    def says(self) -> str:
        """The noise in words, for the report's method line."""
        each = f"; each of {self.family} claims made together at {1 - (1 - CONFIDENCE) / self.family:.2%}"
        each = each if self.family > 1 else ""
        if not self.measured:
            return f"{self.sd:.0%} assumed (no point has two repeats){each}"
        return f"{self.sd:.1%} a run, pooled over the repeats of every point ({int(self.df)} degrees of freedom){each}"


PRIOR = Noise(PRIOR_SD, math.inf)


def pooled(rows: pd.DataFrame, column: str = "train_img_s", by: str = "point_id") -> Noise:
    """The pooled spread of log(`column`) over the ok rows of each `by` group with two or more."""
    rates = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
    ok = (rates > 0) & (rows["status"].to_numpy() == "ok" if "status" in rows else True)
    logs = np.log(rates[ok])
    codes = pd.factorize(rows[by].to_numpy()[ok])[0]
    n = np.bincount(codes, minlength=codes.max() + 1 if len(codes) else 0)
    df = float(np.clip(n - 1, 0, None).sum())
    if df < 1:
        return PRIOR
    means = np.bincount(codes, logs) / n
    return Noise(max(math.sqrt(float(((logs - means[codes]) ** 2).sum()) / df), 1e-6), df)


@functools.lru_cache(maxsize=256)
def _quantile(df: float, family: int = 1) -> float:
    level = 1 - (1 - CONFIDENCE) / max(family, 1)
    return float(special.ndtri(level) if math.isinf(df) else special.stdtrit(df, level))


def margin(noise: Noise, n_a: float, n_b: float) -> float:
    """How far apart two log means of n_a and n_b runs must be for a claim."""
    return _quantile(noise.df, noise.family) * noise.sd * math.sqrt(1 / max(n_a, 1) + 1 / max(n_b, 1))


def of_points(points: pd.DataFrame, scale: float = 1.0, family: bool = False) -> Noise:
    """A folder's pooled noise as points.table wrote it beside every point (PRIOR where absent),
    times `scale` (a ratio of two rates carries the noise of both: sqrt(2)); with `family`, judged
    as the sweep's bounds are (two claims a configuration)."""
    sd = pd.to_numeric(points.get("noise_sd", pd.Series(dtype=float)), errors="coerce").dropna()
    df = pd.to_numeric(points.get("noise_df", pd.Series(dtype=float)), errors="coerce").dropna()
    k = pd.to_numeric(points.get("noise_family", pd.Series(dtype=float)), errors="coerce").dropna()
    base = Noise(float(sd.iloc[0]), float(df.iloc[0])) if len(sd) and len(df) else PRIOR
    return Noise(base.sd * scale, base.df, int(k.iloc[0]) if family and len(k) else 1)


def combined(a: Noise, b: Noise) -> Noise:
    """Two folders' noises (two sweeps, two machines) pooled by their degrees of freedom; assumed
    where either is."""
    if not (a.measured and b.measured):
        return Noise(max(a.sd, b.sd), math.inf) if not (a.measured or b.measured) else (b if a.measured else a)
    return Noise(math.sqrt((a.df * a.sd**2 + b.df * b.sd**2) / (a.df + b.df)), a.df + b.df)


def differ(a: float, n_a: float, b: float, n_b: float, noise: Noise, ratio: float = 1.0) -> int:
    """+1 where the rate `a` (a geometric mean of n_a runs) is above `ratio` x `b` beyond the noise,
    -1 where below, 0 where the noise cannot tell."""
    if pd.isna(a) or pd.isna(b) or not (a > 0 and b > 0):  # a rate missing (None, NaN) or 0: no claim
        return 0
    d = math.log(a) - math.log(ratio * b)
    m = margin(noise, n_a, n_b)
    return 1 if d > m else -1 if d < -m else 0


def faster(new: list[float], old: list[float], noise: Noise | None = None) -> bool:
    """Runs `new` beat runs `old` beyond the noise: their own pooled spread, or `noise`."""
    if not new or not old:
        return False
    if noise is None:
        frame = pd.DataFrame({"train_img_s": [*new, *old], "point_id": ["new"] * len(new) + ["old"] * len(old)})
        noise = pooled(frame)
    return differ(geomean(new), len(new), geomean(old), len(old), noise) > 0


def geomean(rates) -> float:
    values = [v for v in rates if v and v > 0]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def repeats_to_see(change: float, noise: Noise) -> int:
    """Repeats each side needs for a change of `change` (0.3: a 30% drop) to be claimed in 90% of
    comparisons: the margin plus 1.28 standard errors inside it."""
    for n in range(1, 33):
        if margin(noise, n, n) + special.ndtri(0.9) * noise.sd * math.sqrt(2 / n) < abs(math.log(1 - change)):
            return n
    return 33
