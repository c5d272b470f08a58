#!/bin/sh
# gpu-check on a lent GPU machine (the device tool: a session that is given one), whose image has jax
# and torch but no TensorFlow or Keras. Prepare here, once (wheels/ is ignored by git):
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d wheels keras==3.15.1 namex==0.1.0 optree==0.20.0
# then: run(command="sh scripts/gpu_check_device.sh 2>&1 | tee $OUT/log.txt", carry=["wheels"], timeout_s=560)
# Phases, each under its own timeout so that one stuck phase leaves the others' results:
#   1. the doctor (what each backend trains on);
#   2. gpu-check: gpu-quick's model-alone points on jax, then bench/gpucheck.py's checks;
#   3. start-up a run on jax and torch, forked from their launcher and with GPUBENCH_FORK=0 (resnet50
#      alone, 2 runs a sweep, a short window): startup_s and its parts, printed and kept;
#   4. quick on the GPU (keras and torch loaders, one repeat): the bound and the fixed costs a run.
# The results come back in $OUT/results.tgz (results/reference/<gpu>/...), written again after each phase.
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site wheels/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi -L
timeout 60 python3 -m bench.run.doctor
label=$(python3 -m bench.run.label) || { echo "$label" >&2; exit 2; }
ref="results/reference/$label"
echo "label: $label"
save() { tar czf "$OUT/results.tgz" "$ref"; }
timeout 200 python3 -m bench sweep --preset gpu-quick --set backend=jax --set pipeline=synthetic --set checkpoint=false --no-ceilings \
  --out "$ref/gpu-check/jax" --force
timeout 30 python3 -m bench.gpucheck "$ref/gpu-check/jax"
echo "gpucheck exit: $?"
save
one="--set pipeline=synthetic --set backbone=resnet50 --set precision=mixed_bfloat16 --set batch=128 --set checkpoint=false
  --set window=epochs --set epochs=2 --set steps_per_epoch=10 --set transfer=float32 --set data_format=channels_last"
for backend in jax torch; do
  for fork in 1 0; do
    # shellcheck disable=SC2086 # $one is a list of arguments
    GPUBENCH_FORK=$fork timeout 45 python3 -m bench sweep --preset gpu-quick --set backend=$backend $one --repeat 2 \
      --no-ceilings --out "$ref/startup/$backend-fork$fork" --force
    python3 -c "import pandas as p, sys; r = p.read_json(sys.argv[1] + '/runs.jsonl', lines=True); print(sys.argv[1], r[['status', 'forked', 'startup_s', 'import_s', 'device_s', 'model_s', 'flops_s', 'wall_s']].round(2).to_string())" "$ref/startup/$backend-fork$fork"
    save
  done
done
timeout 90 python3 -m bench sweep --preset quick --set backend=jax --set pipeline=keras,torch --repeat 1 \
  --out "$ref/quick-jax" --force
save
echo done
