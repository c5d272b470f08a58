"""What the figures say, in words: the verdict paragraph, the noise warnings, where a sweep's
time went. The figures themselves come from bench/analyse/points.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analyse.bounds import ABOVE, AT_CEILING, BUSY_PCT
from bench.analyse.noise import CONFIDENCE, differ, geomean, of_points
from bench.analyse.points import read, runnable
from bench.plan.knobs import KNOBS, knobs_of, plain
from models import is_pipeline_alone
from pipelines.registry import is_model_alone, other_loaders

DEFAULT_BACKEND = KNOBS["backend"].default
HELP_KNOBS = ("backend", *knobs_of("pipeline", "loader", "batch", "device"))  # settings a user would change

RULE = (
    f"`bound` is `input` when images/s end to end reach {AT_CEILING:.0%} or more of the lower "
    "ceiling and that ceiling is the pipeline's (the pipeline alone, feeding a model that costs "
    "nothing), `compute` when it is the model's (the model alone, on tensors in memory shaped as the "
    "job's own batches), `balanced` when the two ceilings do not differ beyond the noise, "
    f"`overhead` when below {AT_CEILING:.0%} of both beyond the noise (per-epoch pauses, synchronisation, "
    "or on a CPU the loader and the model competing for the same cores). No bound is named (it is withheld, "
    f"with the reason) at an efficiency under {AT_CEILING:g} but within the noise of it, at one above its ceiling "
    f"beyond the noise, or where the point or its ceiling ran while other work took over {BUSY_PCT:.0f}% of the "
    "CPU; each of these gets one more repeat where the sweep can still run one, and a point more than "
    f"{ABOVE - 1:.0%} above its ceiling gets another look at that ceiling whatever the noise. Every comparison "
    "(which ceiling is lower, at or below it, the fastest setting, the one that changed most) is claimed only "
    f"outside a {CONFIDENCE:.1%} one-sided interval on each side of the log rates (a bound: its {1 - CONFIDENCE:.1%} "
    "shared among both sides of every configuration of the sweep, Bonferroni's way), with the repeats' spread pooled "
    "over every point of the folder (bench/analyse/noise.py). The ceilings are measured as their points are, "
    "in their own processes and interleaved with them: each pass runs every configuration's next repeat, a "
    "pipeline ceiling just before the first point it feeds and a model ceiling right after the last point it "
    "bounds, so load that comes and goes falls on both; a ceiling runs again in a later pass only while its "
    "margin over the other ceiling is within the noise, since then it could change which one bounds. "
    "efficiency = images/s end to end / the lower ceiling. data wait = the share of step time spent waiting "
    "for the loader: from when the training loop turned to a batch until it was decoded and batched, measured "
    "per step (the hand-off into the step, queue and conversion to tensors, counts as step time)."
)


def called(p) -> str:
    """A configuration in words; its backend only where it is not the knob's default."""
    backend = p.get("backend", DEFAULT_BACKEND)
    return f"{p['setting']} at batch {p['batch']}" + ("" if backend == DEFAULT_BACKEND else f" on {backend}")


def _side(points: pd.DataFrame) -> tuple[float, float]:
    """(the geometric mean of the points' rates, the runs it stands for): k points of n_i repeats
    each average to a log mean whose spread is that of k**2 / sum(1 / n_i) runs."""
    n = points["repeats_ok"].to_numpy(float).clip(min=1) if "repeats_ok" in points else np.ones(len(points))
    return geomean(_geo(points)), len(points) ** 2 / float((1 / n).sum())


def claim_doubt(faster: pd.DataFrame, slower: pd.DataFrame) -> str:
    """Why "`faster` gave more images/s than `slower`" cannot be stated ('' when it can), by the
    noise rule (bench/analyse/noise.py). Each side is one point or several, compared by their
    geometric mean over the other settings."""
    noise = of_points(faster if faster.get("noise_sd", pd.Series(dtype=float)).notna().any() else slower)
    (a, n_a), (b, n_b) = _side(faster), _side(slower)
    if differ(a, n_a, b, n_b, noise) > 0:
        return ""
    return f"the difference ({a / b:.2f}x) is within the noise ({noise.says()})"


def rivals_of_fastest(ranked: pd.DataFrame) -> set[str]:
    """The points of `ranked` (fastest first, one table's) that claim_doubt cannot tell from the
    first, each side one point: the same rule over arrays, since slicing a frame a row at a time
    took most of a pass's choice of repeats."""
    if len(ranked) < 2:
        return set()
    first = ranked.iloc[:1]
    noise = of_points(first if first.get("noise_sd", pd.Series(dtype=float)).notna().any() else ranked.iloc[1:])
    rates = [geomean([r]) for r in _geo(ranked).to_numpy(float)]
    runs = ranked["repeats_ok"].to_numpy(float).clip(min=1) if "repeats_ok" in ranked else np.ones(len(ranked))
    return {
        pid
        for pid, rate, n in zip(ranked.point_id.iloc[1:], rates[1:], runs[1:])
        if differ(rates[0], runs[0], rate, n, noise) <= 0
    }


def _geo(points: pd.DataFrame) -> pd.Series:
    """Each point's geometric mean of its ok repeats: the rate every claim compares and states."""
    return points.get("train_img_s_geo", points.train_img_s).fillna(points.train_img_s)


def _helped_most(points: pd.DataFrame) -> str | None:
    """The knob whose values most change the geometric mean images/s over the other settings,
    stated only where the claim holds beyond the repeats' spread (claim_doubt), which compares
    the same geometric means."""
    best = None
    for knob in HELP_KNOBS:
        means = _geo(points).groupby(points[knob], dropna=True).agg(geomean)
        if len(means) < 2:
            continue
        ratio = means.max() / means.min()
        if best is None or ratio > best[0]:
            best = (ratio, knob, means.idxmax(), means.idxmin())
    if best is None:
        return None
    ratio, knob, hi, lo = best
    doubt = claim_doubt(points[points[knob] == hi], points[points[knob] == lo])
    if doubt:
        return (
            f"No setting is named as the one that changed images/s most: `{knob}` differed most "
            f"({plain(hi)} over {plain(lo)}), but {doubt}."
        )
    return (
        f"The setting that changed most: `{knob}` = {plain(hi)} gave {ratio:.2f}x the images/s of "
        f"{plain(lo)} (geometric mean over the other settings; beyond the noise)."
    )


def _ranked(points: pd.DataFrame) -> pd.DataFrame:
    """The configurations a user can run, fastest first by the rate claim_doubt compares."""
    ran = runnable(points)
    return ran.assign(train_img_s_geo=_geo(ran)).sort_values("train_img_s_geo", ascending=False)


def named_fastest(points: pd.DataFrame) -> str | None:
    """The point_id `fastest` names, None where it names none."""
    ranked = _ranked(points)
    if len(ranked) == 1 or (len(ranked) > 1 and not claim_doubt(ranked.iloc[:1], ranked.iloc[1:2])):
        return ranked.point_id.iloc[0]
    return None


def fastest(points: pd.DataFrame) -> str | None:
    """The fastest configuration a user can run, with its confidence: named only where its
    repeats stay above the runner-up's on windows long enough (claim_doubt)."""
    ranked = _ranked(points)
    if ranked.empty:
        return None
    best = ranked.iloc[0]
    said = (
        f"**{best['setting']}**, batch {best['batch']}, {best['backbone']} at {best['input_size']}px: "
        f"{best['train_img_s_geo']:.1f} training images/s (geometric mean of its repeats), {best['total_s']:.1f} s "
        f"in all (loader: {best['loader']})"
    )
    if len(ranked) == 1:
        return f"{said}, the only configuration that ran."
    doubt = claim_doubt(ranked.iloc[:1], ranked.iloc[1:2])
    if doubt:
        return (
            f"Not named: the highest is {said}, ahead of {called(ranked.iloc[1])} "
            f"({ranked.iloc[1]['train_img_s_geo']:.1f}), but {doubt}."
        )
    return f"{said}; ahead of the runner-up, {called(ranked.iloc[1])}, beyond the noise."


VERDICTS = (
    (
        "input",
        ("train_img_s", True),
        lambda p, gpu: (
            f"{called(p)} is input-bound at {p['train_img_s']:.0f} images/s, below the {p['model_img_s']:.0f} "
            f"images/s the model can take: {'a faster GPU would not speed the input-bound ones up; ' if gpu else ''}"
            f"more loader workers, another loader ({other_loaders(p['pipeline'], p.get('loader') or '')}) or a cache "
            "would."
        ),
    ),
    (
        "compute",
        ("train_img_s", False),
        lambda p, gpu: (
            f"{called(p)} is compute-bound at {p['efficiency']:.2f} efficiency ({p['train_img_s']:.0f} images/s): "
            f"{'a faster GPU or mixed precision' if gpu else 'more or faster CPU cores'} would speed the compute-bound "
            f"ones up."
        ),
    ),
    (
        "balanced",
        ("train_img_s", True),
        lambda p, gpu: (
            f"{called(p)} is balanced at {p['train_img_s']:.0f} images/s: the pipeline alone "
            f"({p['pipeline_img_s']:.0f}) and the model alone ({p['model_img_s']:.0f}) run at the same rate within the "
            f"noise, so speeding up one of them alone gains little."
        ),
    ),
    (
        "overhead",
        ("efficiency", True),
        lambda p, gpu: (
            f"{called(p)} runs at {p['efficiency']:.2f} of its lower ceiling "
            f"({min(p['pipeline_img_s'], p['model_img_s']):.0f} images/s): neither ceiling explains it, so the "
            f"time goes to overheads, or on a CPU to the loader and the model sharing cores."
        ),
    ),
)


def has_verdict(points: pd.DataFrame) -> bool:
    """Whether the grid points carry a figure to judge (a bound or a data wait): else no verdict is given."""
    return not points.empty and not (points.bound.isna().all() and points.data_wait_frac.isna().all())


def headline(points: pd.DataFrame) -> str:
    """The verdict's first sentence: the bounds counted, or why there are none."""
    judged = points[points.bound.notna()]
    if judged.empty and points.backbone.map(is_pipeline_alone).all():
        return (
            "Every run here is a pipeline alone (the null model): its images/s is that pipeline's "
            "ceiling, and there is no model to weigh it against."
        )
    if judged.empty:
        return "No verdict: the ceilings were not measured (`--no-ceilings`, or their runs failed)."
    doubts = _doubts(judged)
    named = ", ".join(f"{n} {b}-bound" for b, n in judged[doubts == ""].bound.value_counts().items())
    withheld = (doubts != "").sum()
    return f"{named or 'No bound named'} of {len(judged)} configurations" + (
        f", {withheld} withheld." if withheld else "."
    )


def folder_headline(root) -> str:
    """The verdict's first sentence on a results folder's points table, which its report wrote from
    the rows ('' where the report gives none)."""
    try:
        every = read(root)
    except (FileNotFoundError, pd.errors.EmptyDataError):  # no points.csv, or one of no rows
        return ""
    points = every[every.role == "point"] if len(every) else every
    return headline(points) if has_verdict(points) else ""


def _doubts(judged: pd.DataFrame) -> pd.Series:
    return judged.get("bound_doubt", pd.Series("", index=judged.index)).fillna("")


def verdict(points: pd.DataFrame, gpu: bool = True) -> str:
    """A short paragraph written from the figures; a bound whose figures cannot carry it
    (points.bound_doubt) is withheld with its reason, never stated. Without a GPU (`gpu` False)
    it gives no GPU advice."""
    judged = points[points.bound.notna()]
    parts = [headline(points)]
    if judged.empty:
        return parts[0]
    doubts = _doubts(judged)
    sure, withheld = judged[doubts == ""], judged[doubts != ""]
    if len(withheld):
        parts.append(
            f"Bound withheld for {len(withheld)} of {len(judged)} configurations: "
            + "; ".join(f"{called(p)}: {doubts[i]}" for i, p in withheld.iterrows())
            + "."
        )
    notes = sure[sure.get("bound_note", pd.Series("", index=sure.index)).fillna("") != ""]
    if len(notes):
        parts.append(
            "Bound named with a note: "
            + "; ".join(f"{called(p)}: {p['bound_note']}" for _, p in notes.iterrows())
            + "."
        )
    for kind, (column, ascending), say in VERDICTS:  # one sentence per kind, on its most telling case
        cases = sure[sure.bound == kind].sort_values(column, ascending=ascending)
        if len(cases):
            parts.append(say(cases.iloc[0], gpu))
    helped = _helped_most(points[points.train_img_s.notna() & ~points.pipeline.map(is_model_alone)])
    if helped:
        parts.append(helped)
    return " ".join(parts)
