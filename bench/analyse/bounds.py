"""A configuration's bound: which ceiling limits it, how close end to end comes to it, and the words
every reader prints for it, decided once by the noise rule (bench/analyse/noise.py) from a points
row (bench/analyse/points.py writes them into points.csv)."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from bench.analyse.noise import PRIOR, Noise, differ
from bench.plan.knobs import BUSY_PCT

AT_CEILING = 0.8  # a training rate at 80% or more of its lower ceiling is at that ceiling
ABOVE = 1.10  # end to end over its lower ceiling by more than this gets another look at that ceiling
# Other work's share of the CPU (percentage points) by which a point and its lower ceiling may differ
# before their rates are said to be measured under different load (over BUSY_PCT, under load at all).
BUSY_GAP = 20.0


def rate_of(p: dict, prefix: str) -> tuple[float, int]:
    """(the geometric mean of a rate's ok repeats, how many): what the noise rule compares."""
    geo = p.get(f"{prefix}_geo")
    n = p.get("repeats_ok" if prefix == "train_img_s" else f"{prefix.split('_')[0]}_repeats")
    return (p[prefix] if pd.isna(geo) else geo), (1 if pd.isna(n) else int(n))


class Judgement(NamedTuple):
    """A configuration's bound and the words every reader prints for it (the verdict, the tuner's lines,
    the advice, a sweep's closing line): one decision, so that no reader says what its figures do not."""

    bound: str | None  # input, compute, balanced, overhead; with a doubt, the bound the figures lean to
    efficiency: float | None  # end to end over the lower ceiling
    doubt: str  # why the bound is withheld ('' where it stands)
    note: str  # what a reader must know beside a bound that stands ('' where nothing)
    says: str  # the bound in words with its figures, or why none is named


def judge(p: dict, noise: Noise = PRIOR) -> Judgement:
    """The bound by the noise rule (bench/analyse/noise.py), named only where the figures carry it.

    The lower ceiling is the pipeline's (input) or the model's (compute) where the two differ beyond the
    noise, and `balanced` where they do not. A bound is named at AT_CEILING of that ceiling or more;
    `overhead` below AT_CEILING beyond the noise. Withheld, with the reason: an efficiency under
    AT_CEILING but within the noise of it (neither at the ceiling nor shown below it), end to end above
    its ceiling beyond the noise (a measurement to fix), a point or ceiling measured while other work
    took more than BUSY_PCT of the CPU, or the two measured under load BUSY_GAP apart. Above its ceiling
    by more than ABOVE but within the noise, the bound stands with a note saying so."""
    sides = _sides(p, noise)
    if sides is None:
        return Judgement(None, None, "", "", "bound not known: a ceiling was not measured")
    kind, which, efficiency, beyond, at_line = sides
    lower = p["train_img_s"] / efficiency
    named = kind if at_line >= 0 else "overhead"
    against = f"{efficiency:.2f} of the {which} alone ({lower:.0f} images/s)"
    if kind == "balanced":
        against += f"; pipeline alone {p['pipeline_img_s']:.0f} and model alone {p['model_img_s']:.0f} within the noise"
    load = _load(p, which)
    if beyond > 0:
        doubt = (
            f"inconsistent measurement: {p['train_img_s']:.0f} images/s end to end is {efficiency:.2f}x the "
            f"{which}-alone ceiling of {lower:.0f}, beyond the noise ({noise.says()}); likely cause: "
            + (load or "the ceiling and the point measured apart (a warm cache, clocks, load between runs)")
        )
    elif load:
        doubt = f"measured under load: {load}"
    elif named != "overhead" and efficiency < AT_CEILING:
        doubt = (
            f"end to end is {against}, within the noise of the {AT_CEILING:g} line ({noise.says()}): neither "
            "at that ceiling nor below it beyond the noise"
        )
    else:
        doubt = ""
    note = (
        f"end to end is {efficiency:.2f}x its {which}-alone ceiling ({lower:.0f} images/s), within the noise "
        f"({noise.says()}) after another look at that ceiling"
        if efficiency > ABOVE and not doubt
        else ""
    )
    says = f"bound withheld: {doubt}" if doubt else f"{named}-bound at {against}" + (f" ({note})" if note else "")
    return Judgement(named, efficiency, doubt, note, says)


def bound(p: dict, noise: Noise = PRIOR) -> tuple[str | None, float | None, str]:
    """(bound, efficiency, why it is withheld or ''): `judge`'s decision without its words."""
    return judge(p, noise)[:3]


def look_again(p: dict, noise: Noise) -> str | None:
    """The lower ceiling ('pipeline' or 'model') where one more look at it and the point could change
    the verdict: under AT_CEILING of it within the noise (overhead not shown), above it by more than
    ABOVE whatever the noise (a ceiling measured low is a measurement to fix, and one run fixes it), or
    either measured under load (a quieter look replaces it: quiet_runs); else None."""
    sides = _sides(p, noise)
    if sides is None:
        return None
    _, which, efficiency, _, at_line = sides
    return which if efficiency < AT_CEILING and at_line == 0 or efficiency > ABOVE or _load(p, which) else None


def _sides(p: dict, noise: Noise) -> tuple[str, str, float, int, int] | None:
    """(input, compute or balanced; the lower ceiling's name; efficiency; end to end against that
    ceiling and against AT_CEILING of it, by differ), None without both ceilings."""
    if any(pd.isna(p.get(c)) or not p.get(c) for c in ("train_img_s", "pipeline_img_s", "model_img_s")):
        return None
    (t, nt), (pl, npl), (m, nm) = rate_of(p, "train_img_s"), rate_of(p, "pipeline_img_s"), rate_of(p, "model_img_s")
    order = differ(pl, npl, m, nm, noise)
    lower, n_lower, which = (pl, npl, "pipeline") if pl <= m else (m, nm, "model")
    return (
        "input" if order < 0 else "compute" if order > 0 else "balanced",
        which,
        p["train_img_s"] / min(p["pipeline_img_s"], p["model_img_s"]),
        differ(t, nt, lower, n_lower, noise),
        differ(t, nt, lower, n_lower, noise, ratio=AT_CEILING),
    )


def load_case(shares) -> str:
    """The load rule for two figures, given other work's share of the CPU during each (NaN where not
    known): 'over' where one is over BUSY_PCT, 'apart' where they are BUSY_GAP apart, '' where the
    two may be set against each other. Bounds (a point against its ceiling) and the machines report
    (two machines' best) both apply it."""
    known = [float(share) for share in shares if pd.notna(share)]
    if known and max(known) > BUSY_PCT:
        return "over"
    return "apart" if len(known) == 2 and abs(known[0] - known[1]) > BUSY_GAP else ""


def _load(p: dict, which: str) -> str:
    """Other work on the CPU that keeps a point's figures from being judged against its lower ceiling,
    in words ('' where load_case finds none)."""
    shares = {"the point": p.get("others_cpu_pct"), f"its {which}-alone ceiling": p.get(f"{which}_others_cpu_pct")}
    known = {during: share for during, share in shares.items() if pd.notna(share)}
    said = "other work took " + " and ".join(f"{share:.0f}% of the CPU during {d}" for d, share in known.items())
    return {"over": f"{said} (over {BUSY_PCT:.0f}%)", "apart": said}.get(load_case(known.values()), "")
