#!/bin/sh
# The builds `make` installs: CPU builds, or every backend's and DALI's for one CUDA major.
# usage: install_plan.sh extras|index|says  DRIVER_CUDA CUDA OS ARCH
#   DRIVER_CUDA: the CUDA version the driver runs (nvidia-smi's "CUDA Version"), empty without a GPU
#   CUDA: auto, 12, 13 or cpu;  OS, ARCH: uname -s, uname -m
# CUDA 12 runs on every driver from R525 (CUDA 12.0) on, R580+ included, and is the one CUDA of
# TensorFlow's GPU build (tensorflow[and-cuda]): it is the choice for any driver of CUDA 12 or later.
# CUDA=13 (R580+) is jax[cuda13], PyPI's torch and DALI's CUDA 13 build, with TensorFlow on the CPU.
what=$1 driver=$2 cuda=${3:-auto} os=$4 arch=$5
major=${driver%%.*}
if [ "$cuda" = auto ]; then
    if [ -z "$driver" ]; then cuda=cpu why="no NVIDIA GPU (nvidia-smi)"
    elif [ "$major" -ge 12 ] 2>/dev/null; then cuda=12 why="the driver runs CUDA $driver"
    else cuda=cpu why="the driver runs CUDA $driver, older than 12.0: update it to R525 or later for GPU builds"
    fi
else
    why="CUDA=$cuda asked"
fi
case $cuda in
    12) extras=test,gpu12,dali12,fleet index=https://download.pytorch.org/whl/cu126
        builds="CUDA 12 builds of tensorflow, jax, torch (PyTorch's cu126 index) and DALI" ;;
    13) extras=test,gpu13,dali,fleet index=
        builds="CUDA 13 builds of jax, torch and DALI; tensorflow on the CPU (it has no CUDA 13 build)" ;;
    cpu) extras=test,jax,torch,dali,fleet index=
        builds="CPU builds of every backend" ;;
    *) echo "CUDA=$cuda: one of 12, 13, cpu or auto" >&2; exit 2 ;;
esac
dali_note=
case $os-$arch in
    Linux-x86_64|Linux-aarch64) ;;
    *) extras=$(echo "$extras" | sed 's/,dali[0-9]*//')
       dali_note="; DALI left out: it publishes Linux x86-64 and aarch64 wheels only ($os $arch)" ;;
esac
case $what in
    extras) echo "$extras" ;;
    index) echo "$index" ;;
    says) echo "installing $builds ($why): extras $extras$dali_note" ;;
esac
