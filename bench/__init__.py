"""gpubench: training throughput of Keras image classifiers, swept over input-pipeline knobs,
backbones and GPUs. The stages, each importing only the ones before it:

    plan/ (preset + --set -> RunSpecs) -> run/ (RunSpec -> worker -> RunRecord)
    -> results/ (runs.jsonl, runs.csv, env.json) -> analyse/ (rows -> points, verdicts)
    -> output/ (report.md, plots, machines, export, compare)

On top of them: cli/ (the command line), session.py (a sweep: plan, run, store, report),
search.py (the batch-size / input-size search) and finetune.py (train, resume, evaluate, predict)."""
