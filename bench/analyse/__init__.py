"""Stage 4, analyse: stored rows -> figures and words.
In: the rows of a results folder. Out: the points table (repeats -> medians, spreads, ceilings,
bound, efficiency, MFU; points.csv) and the verdicts drawn from it (where the time goes, scaling)."""
