"""The machine and software a sweep ran on (env.json), and the GPU label results file under."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from pathlib import Path

import psutil


def nvml_gpus() -> tuple[list[dict], str, str]:
    """(GPUs, driver version, reason when there are none) from NVML; never raises."""
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            gpus.append({
                "index": i,
                "name": pynvml.nvmlDeviceGetName(h),
                "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20,
                "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
                "compute_capability": float(f"{major}.{minor}"),
            })
        pynvml.nvmlShutdown()
        return gpus, str(driver), "" if gpus else "NVML found no GPU"
    except Exception as e:
        return [], "", f"NVML unavailable: {type(e).__name__}: {e}".splitlines()[0]


def gpu_label(name: str) -> str:
    """'NVIDIA GeForce RTX 2080 Ti' -> '2080ti', 'NVIDIA H200' -> 'h200',
    'NVIDIA GeForce GTX 1060 6GB' -> 'gtx1060', 'Tesla V100-SXM2-16GB' -> 'v100'."""
    words = re.split(r"[\s\-_]+", name.lower())
    for i, word in enumerate(words):
        if re.search(r"\d", word) and word not in ("nvidia",):
            label = re.sub(r"[^a-z0-9]", "", word)
            if i + 1 < len(words) and words[i + 1] in ("ti", "super"):
                label += words[i + 1]
            if i > 0 and words[i - 1] == "gtx":
                label = "gtx" + label
            return label
    return re.sub(r"[^a-z0-9]", "", name.lower()) or "gpu"


def visible_handles(pynvml) -> list:
    """NVML handles of the GPUs this process's CUDA sees, in CUDA's numbering. NVML numbers every
    GPU of the machine whatever CUDA_VISIBLE_DEVICES says, so a run given GPU 3 (by hand, or by
    Slurm on a shared node) must map its device 0 to NVML's 3: entries are indices (NVML's order,
    the PCI bus order, which CUDA follows with CUDA_DEVICE_ORDER=PCI_BUS_ID, as Slurm's indices do),
    GPU- UUIDs (or unique prefixes of them) or MIG- UUIDs. As CUDA does, the list ends at the first
    entry that names no device."""
    count = pynvml.nvmlDeviceGetCount()
    every = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return every
    uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in every]
    handles = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit() and int(entry) < count:
            handles.append(every[int(entry)])
        elif entry.startswith("GPU-") and sum(u.startswith(entry) for u in uuids) == 1:
            handles.append(every[next(i for i, u in enumerate(uuids) if u.startswith(entry))])
        elif entry.startswith("MIG-"):
            try:
                handles.append(pynvml.nvmlDeviceGetHandleByUUID(entry))
            except pynvml.NVMLError:
                break
        else:
            break
    return handles


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def compute_capability() -> float | None:
    """The CUDA compute capability of the first GPU this process sees (8.0 and later have TF32
    tensor cores), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = visible_handles(pynvml)
        if not handles:
            return None
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handles[0])
        return float(f"{major}.{minor}")
    except Exception:
        return None


def auto_label() -> str:
    """--gpu auto: the first GPU NVML sees as a short label (h200), or cpu when it sees none."""
    gpus, _, _ = nvml_gpus()
    return gpu_label(gpus[0]["name"]) if gpus else "cpu"


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


def driver_cuda() -> str:
    """The newest CUDA the driver supports ("12.8"), or "" without NVML: which builds can use the GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        return f"{version // 1000}.{version % 1000 // 10}"
    except Exception:
        return ""


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
        "cpu_cores": psutil.cpu_count(logical=False),  # physical: hyper-threads do not decode twice as fast
        "cpu_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "jax_cuda": _version("jax-cuda12-plugin") or _version("jax-cuda13-plugin"),
        "torch": _version("torch"),  # a "+cpu" suffix marks a CPU-only build
        "accelerators": accelerator_packages(),
        "gpubench": _version("gpubench"),
        "commit": git_commit(),
        "host": platform.node(),
    }


# What makes two machines measure differently: hardware, driver and the frameworks' versions
# (torch's carries its +cu or +cpu build); then the CUDA runtime, cuDNN and the accelerator packages,
# counted only where there are some, so that a CPU machine's identity is what it was before them.
FINGERPRINT = ("cpu", "cpu_threads", "gpu_names", "driver", "tensorflow", "keras", "jax", "jaxlib", "torch")
FINGERPRINT_WHERE_ANY = ("cuda", "cudnn", "accelerators")


def fingerprint(env: dict) -> dict:
    """The machine's identity in an env.json: two folders with the same fingerprint were measured
    on the same kind of machine and software."""
    names = [g.get("name") for g in env.get("gpus") or []]
    return {**{key: names if key == "gpu_names" else env.get(key) for key in FINGERPRINT},
            **{key: env[key] for key in FINGERPRINT_WHERE_ANY if env.get(key)}}


def fingerprint_id(env: dict) -> str:
    """The fingerprint as a short id, the `machine` column of every row."""
    return hashlib.sha1(json.dumps(fingerprint(env), sort_keys=True).encode()).hexdigest()[:10]


def identity(env: dict) -> dict:
    """The columns that say what measured a row: gpubench's version and commit, the machine and host."""
    return {"gpubench": env.get("gpubench", ""), "commit": env.get("commit", ""), "machine": fingerprint_id(env),
            "host": env.get("host", "")}


@functools.cache
def this_machine() -> dict:
    """identity() of the machine this process runs on (a sweep's jobs may run on others)."""
    return identity(collect())


def differs(folder_env: dict, env: dict) -> str | None:
    """What sets a folder's environment apart from this one's (the machine, or the code that
    measures), in a few words, or None when rows of both may stand together."""
    old, new = fingerprint(folder_env), fingerprint(env)
    changed = [f"{key} {old.get(key)} vs {new.get(key)}" for key in dict.fromkeys([*old, *new])
               if old.get(key) != new.get(key)]
    if changed:
        return "another machine (" + "; ".join(changed) + ")"
    if folder_env.get("commit") != env.get("commit"):
        return f"another commit ({(folder_env.get('commit') or '?')[:12]} vs {(env.get('commit') or '?')[:12]})"
    return None
