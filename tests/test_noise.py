"""The confidence rule (bench/analyse/noise.py), checked by simulation with the real rule: sweeps of
quick's shape (12 configurations, each with its two ceilings, 2 repeats) whose rates carry 8% noise.
Where nothing differs a bound or a ranking is claimed in 5% of sweeps or fewer; where the difference
is 30%, in 90% or more."""

import numpy as np
import pandas as pd

from bench.analyse import noise
from bench.analyse.bounds import bound

SWEEPS, POINTS, NOISE = 400, 12, 0.08


def judged(draws: dict, repeats: int) -> tuple[str | None, float | None, str]:
    """The first configuration's bound from the first `repeats` draws of each rate, the noise pooled
    over every configuration's three rates, as points.table pools them."""
    rows = pd.DataFrame(
        [
            {"point_id": f"{k}{i}", "train_img_s": rate}
            for k, d in draws.items()
            for i in range(POINTS)
            for rate in d[i, : repeats if i == 0 else 2]
        ]
    )
    first = {k: float(np.exp(np.log(d[0, :repeats]).mean())) for k, d in draws.items()}
    first |= {"repeats_ok": repeats, "pipeline_repeats": repeats, "model_repeats": repeats}
    return bound(first, noise.pooled(rows))


def claimed(pipeline: float, model: float, seed: int = 0) -> float:
    """The share of sweeps whose first configuration is stated input- or compute-bound: 2 repeats,
    then a third where the verdict is unsettled (balanced, or an efficiency within the noise of the
    line), as the sweep does (bench/session.py one_more_look)."""
    rng = np.random.default_rng(seed)
    truth = {"train_img_s": 0.95 * min(pipeline, model), "pipeline_img_s": pipeline, "model_img_s": model}
    said = 0
    for _ in range(SWEEPS):
        draws = {k: v * np.exp(rng.normal(0, NOISE, (POINTS, 3))) for k, v in truth.items()}
        kind, _, doubt = judged(draws, 2)
        if kind == "balanced" or doubt.startswith("the efficiency"):
            kind, _, doubt = judged(draws, 3)
        said += kind in ("input", "compute") and not doubt
    return said / SWEEPS


def ranked(ratio: float, seed: int = 1) -> float:
    """The share of sweeps in which one of two configurations is claimed faster than the other,
    with the third repeat where two do not settle it."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(SWEEPS):
        runs = np.exp(rng.normal(0, NOISE, (POINTS, 3)))
        runs[0] *= ratio
        for repeats in (2, 3):
            rows = pd.DataFrame(
                {"point_id": np.repeat(np.arange(POINTS), repeats), "train_img_s": runs[:, :repeats].ravel()}
            )
            found = noise.differ(
                noise.geomean(runs[0, :repeats]), repeats, noise.geomean(runs[1, :repeats]), repeats, noise.pooled(rows)
            )
            if found:
                break
        hits += found != 0
    return hits / SWEEPS


def test_equal_ceilings_are_stated_as_a_bound_in_5_percent_of_sweeps_or_fewer():
    assert claimed(100.0, 100.0) <= 0.05


def test_ceilings_30_percent_apart_are_stated_as_a_bound_in_90_percent_of_sweeps_or_more():
    assert claimed(100.0, 130.0) >= 0.90 and claimed(130.0, 100.0, seed=2) >= 0.90


def test_a_ranking_is_claimed_where_nothing_differs_in_5_percent_of_sweeps_or_fewer_and_at_30_percent_in_90():
    assert ranked(1.0) <= 0.05
    assert ranked(1.3) >= 0.90


def test_one_repeat_leans_on_the_assumed_noise_and_claims_only_large_differences():
    assert noise.pooled(pd.DataFrame({"point_id": ["a", "b"], "train_img_s": [100.0, 130.0]})) == noise.PRIOR
    assert noise.differ(130.0, 1, 100.0, 1, noise.PRIOR) == 0  # 30% on one run each: cannot tell
    assert noise.differ(200.0, 1, 100.0, 1, noise.PRIOR) == 1
    assert noise.repeats_to_see(0.3, noise.Noise(0.08, 20)) == 2
