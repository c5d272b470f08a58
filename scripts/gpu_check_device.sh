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
#   3. quick on the GPU (keras and torch loaders, one repeat): the bound and the fixed costs a run.
# The results come back in $OUT/results.tgz (results/reference/<gpu>/...).
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site wheels/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi -L
timeout 120 python3 -m bench.run.doctor
label=$(python3 -m bench.run.label) || { echo "$label" >&2; exit 2; }
ref="results/reference/$label"
echo "label: $label"
timeout 220 python3 -m bench sweep --preset gpu-quick --set backend=jax --set pipeline=synthetic --set checkpoint=false --no-ceilings \
  --out "$ref/gpu-check/jax" --force
timeout 60 python3 -m bench.gpucheck "$ref/gpu-check/jax"
echo "gpucheck exit: $?"
timeout 170 python3 -m bench sweep --preset quick --set backend=jax --set pipeline=keras,torch --repeat 1 \
  --out "$ref/quick-jax" --force
tar czf "$OUT/results.tgz" "$ref"
echo done
