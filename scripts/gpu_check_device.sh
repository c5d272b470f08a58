#!/bin/sh
# gpu-check on a lent GPU machine (the device tool: a later session that is given one). Prepare here:
#   .venv/bin/python -m pip download --no-deps keras==3.15.1 namex optree -d wheels
# then: run(command="sh scripts/gpu_check_device.sh", carry=["wheels"], timeout_s=540)
# It installs the carried wheels beside the machine's own jax (CUDA), runs the doctor, a gpu-quick of
# the model alone on jax, and the checks (bench/gpucheck.py); results come back under $OUT/results/.
set -e
python3 -m pip install --quiet --no-deps wheels/*.whl
python3 -m pip install --quiet --no-deps -e .
nvidia-smi | head -n 12
python3 -m bench.run.doctor
label=$(python3 -c "from bench.results.machine import auto_label; print(auto_label())")
out="${OUT:-/tmp}/results/reference/$label/gpu-check/jax"
python3 -m bench sweep --preset gpu-quick --set backend=jax --set pipeline=synthetic --no-ceilings --out "$out" --force
python3 -m bench.gpucheck "$out"
