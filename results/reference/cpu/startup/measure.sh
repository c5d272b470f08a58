#!/bin/sh
# start-up a run, forked and not, each backend: smoke, pipelines synthetic and keras, one repeat, no ceilings
cd "$(dirname "$0")/../../../.."
for b in tensorflow jax torch; do for f in 1 0; do
  GPUBENCH_FORK=$f .venv/bin/gpubench sweep --preset smoke --set backend=$b --set pipeline=synthetic,keras --repeat 1 --no-ceilings --out ${OUT:-/tmp/startup}/m-$b-$f --force > /dev/null 2>&1
  .venv/bin/python -c "
import pandas as p; r=p.read_json('${OUT:-/tmp/startup}/m-$b-$f/runs.jsonl', lines=True)
m=r[['startup_s','import_s','device_s','model_s','flops_s','wall_s']].median()
print('$b', 'forked' if '$f'=='1' else 'GPUBENCH_FORK=0', int(r.forked.sum()), 'of', len(r), ' '.join(f'{k}={v:.2f}' for k,v in m.items()))"
done; done
