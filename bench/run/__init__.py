"""Stage 2, run: running RunSpecs, each in a fresh worker process (or several, or a cluster job).
In: RunSpecs and a dataset index. Out: one RunRecord row per run, appended to the results store
(results/ holds the record schema and the store this stage writes into)."""
