"""Stage 5, output: what people read.
In: the points table and the rows. Out: report.md, the plots, the machines report, the JSON
export and the compare gate (its exit status). Computes no figure of its own."""
