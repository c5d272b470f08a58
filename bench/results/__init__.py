"""Stage 3, results: keeping rows and what they were measured on.
In: RunRecord rows. Out: runs.jsonl and runs.csv (append-only, versioned schema), env.json (the
machine and its fingerprint) and the datasheets of known GPUs. Imports only plan/."""
