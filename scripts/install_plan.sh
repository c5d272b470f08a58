#!/bin/sh
# The builds `make` installs: CPU builds, or every backend's and DALI's for ONE CUDA major (two
# stacks in one venv overwrite each other's libcudnn.so.9 and NCCL).
# usage: install_plan.sh extras|index|constraints|says  DRIVER_CUDA CUDA OS ARCH TORCH_INDEX_REACHABLE GPU_CC
#   DRIVER_CUDA: the CUDA version the driver runs (nvidia-smi's "CUDA Version"), empty without a GPU
#   CUDA: auto, 12, 13 or cpu;  OS, ARCH: uname -s, uname -m;  TORCH_INDEX_REACHABLE: yes or no
#   GPU_CC: the highest compute capability of the GPUs (nvidia-smi's compute_cap), empty if unknown
# TensorFlow is the tf extra, in every plan (a venv without it measures with jax and torch).
# CUDA 12 runs on every driver from R525 (CUDA 12.0) on, R580+ included, and is the one CUDA of
# TensorFlow's GPU build (tensorflow[and-cuda], x86-64 only: its aarch64 wheels are CPU builds).
# torch's CUDA 12 build comes from PyTorch's cu126 index; where that index cannot be reached, torch
# 2.10.0, the newest release whose PyPI build is CUDA 12 (12.8, pip's report: nvidia-cudnn-cu12,
# x86-64 and aarch64), never PyPI's newer CUDA 13 torch beside CUDA 12 TensorFlow and JAX.
# CUDA=13 (R580+) is jax[cuda13], PyPI's torch and DALI's CUDA 13 build, with TensorFlow on the CPU.
what=$1 driver=$2 cuda=${3:-auto} os=$4 arch=$5 reach=${6:-yes} cc=$7
major=${driver%%.*}
# Blackwell (compute capability 10 and 12: B200, GB200, RTX 50): torch's cu126 build has no kernels
# for it; its cu128 build (and PyPI's 2.10.0, CUDA 12.8) has.
cu=cu126
if [ "${cc%%.*}" -ge 10 ] 2>/dev/null; then cu=cu128; fi
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
    12) extras=test,tf,gpu12,dali12,fleet tf="tensorflow, "
        if [ "$arch" = aarch64 ]; then
            extras=test,tf,gpu12-aarch64,dali12,fleet tf=
            tf_note="; tensorflow on the CPU: its aarch64 wheels are not CUDA builds (measure with jax or torch)"
        fi
        if [ "$reach" = yes ]; then
            index=https://download.pytorch.org/whl/$cu torch="torch from PyTorch's $cu index"
            [ $cu = cu128 ] && torch="$torch (Blackwell: compute capability $cc)"
        else
            constraints=constraints-torch-pypi-cuda12.txt
            torch="torch 2.10.0 from PyPI (PyTorch's $cu index is unreachable; 2.10.0 is the newest PyPI torch built for CUDA 12)"
        fi
        builds="CUDA 12 builds of ${tf}jax, $torch and DALI" ;;
    13) extras=test,tf,gpu13,dali,fleet
        builds="CUDA 13 builds of jax, torch and DALI; tensorflow on the CPU (it has no CUDA 13 build)" ;;
    cpu) extras=test,tf,jax,torch,dali,fleet
        if [ "$os" != Linux ]; then
            builds="CPU builds of every backend"
        elif [ "$reach" = yes ]; then
            index=https://download.pytorch.org/whl/cpu
            builds="CPU builds of every backend (torch from PyTorch's cpu index) and DALI's CUDA 13 wheel (DALI has no CPU build; its CPU pipelines need no GPU)"
        else
            builds="CPU builds of tensorflow and jax; PyPI's torch, whose Linux build brings CUDA 13 libraries (about 3 GB: PyTorch's cpu index is unreachable), and DALI's CUDA 13 wheel (DALI has no CPU build)"
        fi ;;
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
