#!/bin/sh
# The builds `make` installs: CPU builds, or every backend's and DALI's for ONE CUDA major (two
# stacks in one venv overwrite each other's libcudnn.so.9 and NCCL).
# usage: install_plan.sh extras|index|constraints|says  DRIVER_CUDA CUDA OS ARCH TORCH_INDEX_REACHABLE
#   DRIVER_CUDA: the CUDA version the driver runs (nvidia-smi's "CUDA Version"), empty without a GPU
#   CUDA: auto, 12, 13 or cpu;  OS, ARCH: uname -s, uname -m;  TORCH_INDEX_REACHABLE: yes or no
# CUDA 12 runs on every driver from R525 (CUDA 12.0) on, R580+ included, and is the one CUDA of
# TensorFlow's GPU build (tensorflow[and-cuda], x86-64 only: its aarch64 wheels are CPU builds).
# torch's CUDA 12 build comes from PyTorch's cu126 index; where that index cannot be reached, torch
# 2.10.0, the newest release whose PyPI build is CUDA 12 (12.8, pip's report: nvidia-cudnn-cu12,
# x86-64 and aarch64), never PyPI's newer CUDA 13 torch beside CUDA 12 TensorFlow and JAX.
# CUDA=13 (R580+) is jax[cuda13], PyPI's torch and DALI's CUDA 13 build, with TensorFlow on the CPU.
what=$1 driver=$2 cuda=${3:-auto} os=$4 arch=$5 reach=${6:-yes}
major=${driver%%.*}
if [ "$cuda" = auto ]; then
    if [ -z "$driver" ]; then cuda=cpu why="no NVIDIA GPU (nvidia-smi)"
    elif [ "$major" -ge 12 ] 2>/dev/null; then cuda=12 why="the driver runs CUDA $driver"
    else cuda=cpu why="the driver runs CUDA $driver, older than 12.0: update it to R525 or later for GPU builds"
    fi
else
    why="CUDA=$cuda asked"
fi
if [ "$cuda" = 13 ] && [ -n "$driver" ] && ! [ "$major" -ge 13 ] 2>/dev/null; then
    echo "CUDA=13 needs a driver that runs CUDA 13 (R580 or later); this one runs CUDA $driver: use CUDA=12, or update the driver" >&2
    exit 2
fi
constraints=constraints.txt index= tf_note=
case $cuda in
    12) extras=test,gpu12,dali12,fleet tf="tensorflow, "
        if [ "$arch" = aarch64 ]; then
            extras=test,gpu12-aarch64,dali12,fleet tf=
            tf_note="; tensorflow on the CPU: its aarch64 wheels are not CUDA builds (measure with jax or torch)"
        fi
        if [ "$reach" = yes ]; then
            index=https://download.pytorch.org/whl/cu126 torch="torch from PyTorch's cu126 index"
        else
            constraints=constraints-torch-pypi-cuda12.txt
            torch="torch 2.10.0 from PyPI (PyTorch's cu126 index is unreachable; 2.10.0 is the newest PyPI torch built for CUDA 12)"
        fi
        builds="CUDA 12 builds of ${tf}jax, $torch and DALI" ;;
    13) extras=test,gpu13,dali,fleet
        builds="CUDA 13 builds of jax, torch and DALI; tensorflow on the CPU (it has no CUDA 13 build)" ;;
    cpu) extras=test,jax,torch,dali,fleet
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
    constraints) echo "$constraints" ;;
    says) echo "installing $builds ($why): extras $extras$tf_note$dali_note" ;;
esac
