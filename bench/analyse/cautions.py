"""The report's cautions about how the figures were taken: how busy the machine was, spreads between
repeats, a slow first repeat, windows too short or bound by their epochs, ceilings timed too briefly.
Each says what to do about it."""

from __future__ import annotations

import pandas as pd

from bench.analyse.points import SHORT_S, records, spec_of
from bench.analyse.verdicts import called
from bench.plan.knobs import BUSY_PCT
from pipelines.epochs import loader_depth, window_steps
from pipelines.registry import is_model_alone

SPREAD_WARN = 0.10  # (max - min) / median of the repeats' images/s
FIRST_SLOW = 1.25  # the first repeat's total time over the others' median


def load_said(every: pd.DataFrame) -> str:
    """How busy the machine was with other work during the measured windows of every run the table holds
    (points and ceilings), and what that did to the verdicts: the report's header says it."""
    others = pd.to_numeric(every.get("others_cpu_pct", pd.Series(dtype=float)), errors="coerce").dropna()
    if others.empty:
        return ""
    said = (
        f"Load: other work took {others.min():.0f}% to {others.max():.0f}% of the CPU during the measured windows "
        f"(median {others.median():.0f}%)"
    )
    busy = (others > BUSY_PCT).sum()
    aside = int(pd.to_numeric(every.get("runs_set_aside", pd.Series(dtype=float)), errors="coerce").fillna(0).sum())
    loaded = every.get("bound_doubt", pd.Series("", index=every.index)).fillna("").str.startswith("measured under load")
    if busy:
        said += f"; {busy} of {len(others)} configurations and ceilings ran while it took over {BUSY_PCT:.0f}%"
    if aside:
        said += f"; {aside} runs measured under it were set aside for quieter repeats"
    if loaded.any():
        said += f"; {int(loaded.sum())} bounds withheld for load (close other work and run the sweep again)"
    return said + "."


def noise_warnings(frame: pd.DataFrame, points: pd.DataFrame) -> list[str]:
    """hyperfine- and pyperf-style warnings, each with a hint."""
    notes = []
    ok = frame[frame.status == "ok"]
    labels = {p["point_id"]: called(p) for p in records(points)}
    for pid, runs in ok.groupby("point_id"):
        name = labels.get(pid, pid)
        rates = runs.train_img_s
        if len(runs) >= 2 and (rates.max() - rates.min()) / rates.median() > SPREAD_WARN:
            notes.append(
                f"{name}: images/s spread {(rates.max() - rates.min()) / rates.median():.0%} between "
                f"repeats. Hint: another load on the machine, or runs too short; close other work, "
                f"raise epochs or --repeat."
            )
        runs = runs.sort_values("repeat")
        if len(runs) >= 3 and runs.total_s.iloc[0] > FIRST_SLOW * runs.total_s.iloc[1:].median():
            notes.append(
                f"{name}: the first repeat took {runs.total_s.iloc[0] / runs.total_s.iloc[1:].median():.2f}"
                f"x the others. Hint: caches (page cache, compiled kernels) were cold; the median leaves "
                f"it out."
            )
        epoch_bound = _epoch_bound(runs.iloc[0])
        if epoch_bound:
            notes.append(f"{name}: {epoch_bound}")
        window = runs.get("window_s", pd.Series(dtype=float)).median()
        if window < SHORT_S:
            notes.append(
                f"{name}: only {window:.1f} s measured per run, too short to time well. "
                f"Hint: raise epochs or steps_per_epoch."
            )
    return notes


def short_ceilings(frame: pd.DataFrame) -> list[str]:
    """The warning for ceilings timed over windows under SHORT_S (a model alone can run its steps in
    half a second where its points take seconds): their rates carry more noise than the points'
    repeats, from which the noise every bound is judged with is pooled."""
    ok = frame[(frame.status == "ok") & (frame.get("role", "point") == "ceiling")]
    window = pd.to_numeric(ok.get("window_s", pd.Series(dtype=float)), errors="coerce")
    short = window[window < SHORT_S]
    if short.empty:
        return []
    return [
        f"{ok.loc[short.index].point_id.nunique()} ceilings measured over only {short.min():.1f}-{short.max():.1f} s "
        "a run, too short to time well: their rates are noisier than the points' repeats, from which the noise "
        "their bounds are judged with is pooled. Hint: raise epochs or steps_per_epoch."
    ]


def _epoch_bound(run) -> str | None:
    """Why a run's rate is set by its epochs rather than its loader's throughput, or None: an
    epoch with fewer batches than the loader holds (workers and queue) refills it from empty
    every epoch, and a window shorter than window_steps sees little else."""
    if pd.isna(run.get("window_steps")) or is_model_alone(run.pipeline):
        return None
    spec = spec_of(run.to_dict())
    depth, needed = loader_depth(spec), window_steps(spec)
    why = []
    if run.train_steps < depth:
        why.append(
            f"each epoch has {int(run.train_steps)} batches for a loader {depth} deep (workers + queue), so "
            f"every epoch starts it from empty and the rate is one worker's latency, not the loader's "
            f"throughput"
        )
    if run.window_steps < needed:
        why.append(
            f"the window is {int(run.window_steps)} steps, under the {needed} (max(50, 4 x (workers + "
            f"queue))) that a steady loader needs"
        )
    if not why:
        return None
    return (
        "images/s is epoch-bound: " + "; ".join(why) + ". Hint: window=auto (the default) lengthens the "
        "epochs; or raise steps_per_epoch or epochs."
    )
