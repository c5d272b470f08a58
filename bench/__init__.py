"""gpubench: Keras training throughput swept over input pipelines, backbones and GPUs. The stages,
each importing only those before it: plan/ (preset + --set -> RunSpecs) -> run/ (a worker per
RunSpec -> RunRecord rows) -> results/ (runs.jsonl, runs.csv, env.json) -> analyse/ (rows -> points,
verdicts) -> output/ (report.md, plots, machines, export, compare). On top: cli/, session.py (a
sweep), search.py (the batch-size search), finetune.py (train, resume, evaluate, predict)."""
