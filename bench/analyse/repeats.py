"""Which runs another pass needs (pyperf's way: measure more only where it can change a verdict):
a ceiling again only while its margin over the other ceiling is within the noise, and one more
repeat of a point only where its verdict or the ranking of the fastest is unsettled."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from bench.analyse.bounds import look_again, rate_of
from bench.analyse.noise import differ, of_points
from bench.analyse.points import records, runnable, spec_of
from bench.analyse.verdicts import rivals_of_fastest
from bench.plan.grid import model_ceiling, pipeline_ceiling

RANKED = ("point_id", "train_img_s", "train_img_s_geo", "repeats_ok", "noise_sd", "noise_df", "noise_family")


def clear_ceilings(points: pd.DataFrame) -> set[str]:
    """Ceilings whose rate is beyond the noise of the other ceiling's for every point they bound:
    which of the two bounds a point no later repeat can change, so they are not measured again.
    A ceiling that failed, or that any of its points finds balanced, stays unclear."""
    ran = runnable(points)
    noise = of_points(points, family=True)
    clear, unclear = set(), set()
    for p in records(ran):
        spec = spec_of(p)
        both = {pipeline_ceiling(spec).point_id, model_ceiling(spec).point_id}
        apart = differ(*rate_of(p, "pipeline_img_s"), *rate_of(p, "model_img_s"), noise) != 0  # 0 if one is missing
        (clear if apart else unclear).update(both)
    return clear - unclear


def unsettled(points: pd.DataFrame) -> set[str]:
    """The points another repeat could settle: a configuration whose ceilings are balanced, with both
    ceilings, or whose efficiency sits within the noise of AT_CEILING or beyond the noise above 1
    (points.look_again), with its lower ceiling; the fastest configuration and every one whose order
    against it is within the noise (any of them may be the fastest); a ceiling that bounds several
    configurations, measured once (a draw that fell high would move all of their bounds at once)."""
    ran = points[points.repeats_ok > 0]
    if ran.empty:
        return set()
    configurations = runnable(ran)
    noise = of_points(ran, family=True)
    ceiling_of = {"pipeline": pipeline_ceiling, "model": model_ceiling}
    found, bounds = set(), Counter()
    for p in records(configurations):
        spec = spec_of(p)
        lower = look_again(p, noise)  # end to end against the lower ceiling: the other cannot move it
        bounds.update(ceiling(spec).point_id for ceiling in ceiling_of.values())
        if p.get("bound") == "balanced":
            found |= {p["point_id"], *(ceiling(spec).point_id for ceiling in ceiling_of.values())}
        elif lower:
            found |= {p["point_id"], ceiling_of[lower](spec).point_id}
    ranked = configurations[[c for c in RANKED if c in configurations]].sort_values("train_img_s_geo", ascending=False)
    rivals = rivals_of_fastest(ranked)
    found |= rivals | set(ranked.point_id.iloc[:1] if rivals else [])
    once = set(ran.point_id[ran.repeats_ok < 2])
    return found | {pid for pid, n in bounds.items() if n > 1 and pid in once}
