"""The machine and software a sweep ran on (env.json), and the GPU label results file under."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import platform
import re
import subprocess
from pathlib import Path

import psutil

from bench.plan.backends import BACKENDS
from bench.results import container
from bench.results.nvml import compute_capability, driver_cuda, gpu_label, nvml_gpus, visible_handles  # noqa: F401 (for others)

FRAMEWORKS = ("keras", *(p for b in BACKENDS.values() for p in (b.package, *b.also_versioned)))  # their versions


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str:
    """HEAD, with "-dirty" when tracked files differ from it: the code that measures."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return ""
    return head + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def cuda_versions() -> dict:
    """The CUDA runtime and cuDNN the installed frameworks bring, read from package metadata (the
    nvidia-* wheels that torch, jax and tensorflow[and-cuda] install, and torch's own +cuXYZ tag),
    so that no framework is imported here; the CUDA version the driver supports from NVML. Empty
    strings where there are none (CPU builds)."""
    runtime = next(filter(None, (_version(f"nvidia-cuda-runtime{s}") for s in ("-cu13", "-cu12", "-cu11", ""))), "")
    cudnn = next(filter(None, (_version(f"nvidia-cudnn{s}") for s in ("-cu13", "-cu12", "-cu11", ""))), "")
    tag = re.search(r"\+cu(\d+)(\d)$", _version("torch"))
    if not runtime and tag:
        runtime = f"{tag.group(1)}.{tag.group(2)}"
    return {"cuda": runtime, "cudnn": cudnn, "cuda_driver": driver_cuda()}


ACCELERATOR_RE = re.compile(r"^(nvidia-(?!ml-py).+|jax-cuda\d+-.+|tensorflow-.*cuda.*|torch-.*cuda.*)$")


def accelerator_packages() -> dict[str, str]:
    """The installed packages that bring a backend's GPU code (jax's CUDA plugin, the nvidia-* CUDA,
    cuDNN and DALI wheels), name -> version: installing GPU builds changes what measures."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "").lower())
        if ACCELERATOR_RE.match(name):
            found[name] = dist.version
    return dict(sorted(found.items()))


def collect() -> dict:
    """The machine and software a sweep measured on (env.json): what makes its figures comparable."""
    gpus, driver, reason = nvml_gpus()
    return {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "gpu_note": reason,
        "driver": driver,
        **cuda_versions(),
        "cpu": _cpu_model(),
        "cpu_threads": psutil.cpu_count(logical=True),
        **container.limits(psutil.cpu_count(logical=False)),  # physical cores, within the container's quota
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{package: _version(package) for package in FRAMEWORKS},  # torch's "+cpu" suffix: a CPU-only build
        "jax_cuda": _version("jax-cuda12-plugin") or _version("jax-cuda13-plugin"),
        "accelerators": accelerator_packages(),
        "gpubench": _version("gpubench"),
        "commit": git_commit(),
        "host": platform.node(),
    }


# A machine's identity comes in two parts. Its hardware: CPU model and threads, GPU names (their
# count with them) and the driver, which picks the kernels a GPU runs. Its software: the frameworks'
# versions (torch's carries its +cu or +cpu build), then the CUDA runtime, cuDNN and the accelerator
# packages, counted only where there are some, so that a CPU machine's identity is what it was before
# them. The gate (bench/analyse/regressions.py) tells them apart: a framework upgrade on the same
# hardware is what it exists to catch.
HARDWARE = ("cpu", "cpu_threads", "gpu_names", "driver")
LIBRARIES_WHERE_ANY = ("cuda", "cudnn", "accelerators")
FINGERPRINT = (*HARDWARE, *FRAMEWORKS)


def hardware(env: dict) -> dict:
    """The hardware in an env.json: two folders with the same measured on the same kind of machine."""
    names = [g.get("name") for g in env.get("gpus") or []]
    return {key: names if key == "gpu_names" else env.get(key) for key in HARDWARE}


def libraries(env: dict) -> dict:
    """The frameworks and GPU libraries in an env.json: the software part of the fingerprint."""
    return {
        **{key: env.get(key) for key in FRAMEWORKS},
        **{key: env[key] for key in LIBRARIES_WHERE_ANY if env.get(key)},
    }


def software(env: dict) -> dict:
    """Everything installed that measures: the libraries, Python and gpubench's version (its code is the
    commit, which a gate expects to change)."""
    return {**libraries(env), "python": env.get("python"), "gpubench": env.get("gpubench")}


def fingerprint(env: dict) -> dict:
    """The machine's identity in an env.json, hardware and libraries: two folders with the same were
    measured on the same kind of machine and software. A folder holds the runs of one (the store
    refuses another's: their repeats would pool a software change as noise), and a probed peak is
    kept per fingerprint (a framework's or cuDNN's kernels set the peak as much as the chip does)."""
    return {**hardware(env), **libraries(env)}


def changes(old: dict, new: dict) -> list[str]:
    """What differs between two of the dicts above, one "key old vs new" each."""
    return [
        f"{key} {old.get(key)} vs {new.get(key)}" for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)
    ]


def fingerprint_id(env: dict) -> str:
    """The fingerprint as a short id, the `machine` column of every row."""
    return hashlib.sha1(json.dumps(fingerprint(env), sort_keys=True).encode()).hexdigest()[:10]


def identity(env: dict) -> dict:
    """The columns that say what measured a row: gpubench's version and commit, the machine and host."""
    return {
        "gpubench": env.get("gpubench", ""),
        "commit": env.get("commit", ""),
        "machine": fingerprint_id(env),
        "host": env.get("host", ""),
    }


@functools.cache
def this_machine() -> dict:
    """identity() of the machine this process runs on (a sweep's jobs may run on others)."""
    return identity(collect())


def short_commit(commit: str) -> str:
    """A commit as git abbreviates it, its "-dirty" kept: the same HEAD with and without changes differs."""
    head, dirty, _ = commit.partition("-dirty")
    return head[:12] + dirty


def differs(folder_env: dict, env: dict) -> str | None:
    """What sets a folder's environment apart from this one's (the machine, or the code that
    measures), in a few words, or None when rows of both may stand together."""
    changed = changes(fingerprint(folder_env), fingerprint(env))
    if changed:
        return "another machine (" + "; ".join(changed) + ")"
    if folder_env.get("commit") != env.get("commit"):
        theirs, mine = (e.get("commit") or "?" for e in (folder_env, env))
        return f"another commit ({short_commit(theirs)} vs {short_commit(mine)})"
    return None
