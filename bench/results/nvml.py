"""What NVML says about this machine's GPUs, and which of them a run trains on: the figures every
label, sampler and datasheet comparison starts from. A query one card does not support leaves
that figure empty, never the GPU out; NVML failing altogether is told apart from a machine
without NVIDIA devices (nvidia_evidence), so that a broken NVML never passes for "no GPU"."""

from __future__ import annotations

import glob
import os
import re
import shutil


def _try(fn, default=None):
    """fn(), or `default` where NVML cannot answer (a figure the card does not expose)."""
    try:
        return fn()
    except Exception:
        return default


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _slices(pynvml, handle) -> list:
    """The MIG slices of a GPU in MIG mode, else []: the devices CUDA sees in its place."""
    if not _try(lambda: pynvml.nvmlDeviceGetMigMode(handle)[0]):
        return []
    found = []
    for k in range(_try(lambda: pynvml.nvmlDeviceGetMaxMigDeviceCount(handle), 0)):
        mig = _try(lambda k=k: pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, k))
        if mig is not None:
            found.append(mig)
    return found


def describe(pynvml, handle, index: int, parent=None) -> dict:
    """One device as env.json lists it; None for each figure NVML does not give for it."""
    name = _text(_try(lambda: pynvml.nvmlDeviceGetName(handle), "unknown NVIDIA GPU"))
    memory = _try(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20)
    power = _try(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0)
    capability = _try(lambda: pynvml.nvmlDeviceGetCudaComputeCapability(parent if parent is not None else handle))
    return {
        "index": index,
        "name": name,
        "memory_mb": memory,
        "power_limit_w": power,
        "compute_capability": float(f"{capability[0]}.{capability[1]}") if capability else None,
        "uuid": _text(_try(lambda: pynvml.nvmlDeviceGetUUID(handle), "")),
        "mig": parent is not None,
        **sharing(pynvml, handle),
    }


def sharing(pynvml, handle) -> dict:
    """Who else computes on a device: `others`, the process ids NVML lists on it besides this one
    (None where NVML cannot say), and `mps`, whether they reach it through CUDA MPS. NVML's
    utilisation, power and memory are the device's, theirs included."""
    plain = _try(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    mps = _try(lambda: pynvml.nvmlDeviceGetMPSComputeRunningProcesses(handle), []) or []
    pids = None if plain is None else sorted({p.pid for p in [*plain, *mps]} - {os.getpid()})
    return {"others": pids, "mps": bool(mps)}


def nvml_gpus() -> tuple[list[dict], str, str]:
    """(the devices CUDA can train on: each GPU, or each MIG slice of a GPU in MIG mode; the
    driver version; why there are none, NVML's own error where it failed); never raises."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:
        return [], "", f"NVML unavailable: {type(e).__name__}: {e}".splitlines()[0]
    driver = _text(_try(pynvml.nvmlSystemGetDriverVersion, ""))
    gpus = []
    try:
        count = pynvml.nvmlDeviceGetCount()
    except Exception as e:
        return [], driver, f"NVML failed to count the GPUs: {type(e).__name__}: {e}".splitlines()[0]
    for i in range(count):
        handle = _try(lambda i=i: pynvml.nvmlDeviceGetHandleByIndex(i))
        if handle is None:
            continue
        slices = _slices(pynvml, handle)
        gpus += [describe(pynvml, s, i, handle) for s in slices] or [describe(pynvml, handle, i)]
    _try(pynvml.nvmlShutdown)
    return gpus, driver, "" if gpus else "NVML found no GPU"


def visible(gpus: list[dict], environ=None) -> list[dict]:
    """The devices of `gpus` that CUDA sees under `environ` (this process's environment by default),
    in CUDA's numbering (CUDA_VISIBLE_DEVICES:
    indices in NVML's order, the PCI bus order, which every worker's CUDA follows under
    CUDA_DEVICE_ORDER=PCI_BUS_ID; GPU- or MIG- UUIDs or unique prefixes). A GPU in MIG mode named
    by its index is its first slice. As CUDA does, the list ends at the first entry naming none."""
    entries = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if entries is None:
        firsts = {}
        for g in gpus:
            firsts.setdefault(g["index"], g)  # CUDA takes one slice of a MIG GPU unless told which
        return list(firsts.values())
    found = []
    for entry in (e.strip() for e in entries.split(",")):
        if entry.isdigit():
            match = [g for g in gpus if g["index"] == int(entry)][:1]
        else:
            match = [g for g in gpus if entry and g["uuid"].startswith(entry)]
        if len(match) != 1:
            break
        found += match
    return found


def unnamed(gpus: list[dict]) -> str:
    """The first CUDA_VISIBLE_DEVICES entry that names none of `gpus` (a MIG- UUID NVML does not map,
    an index past the last GPU), or "": CUDA would quietly see fewer GPUs, or none. An entry from
    "-1" on hides the GPUs on purpose."""
    entries = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    for entry in entries:
        if entry.startswith("-"):
            return ""
        if entry.isdigit():
            if not any(g["index"] == int(entry) for g in gpus):
                return entry
        elif sum(g["uuid"].startswith(entry) for g in gpus) != 1:
            return entry
    return ""


def used(gpus: list[dict], count: int, asked: str | None = None) -> list[dict]:
    """The devices a run of `count` GPUs trains on: the first `count` CUDA sees, or the one a
    variable pins its backend to (`asked`: KERAS_TORCH_DEVICE=cuda:1); none where it is pinned off
    the GPU (KERAS_TORCH_DEVICE=cpu, JAX_PLATFORMS=cpu: the run stage's backend modules read them)."""
    seen = visible(gpus)
    if asked:
        if not asked.startswith("cuda"):
            return []
        k = int(asked.partition(":")[2] or 0)
        return seen[k : k + 1]
    return seen[:count]


# Words of an NVML name that make another card of the same model: another datasheet, another label.
VARIANTS = ("pcie", "nvl", "40gb", "ada", "blackwell", "laptop")


def gpu_label(name: str) -> str:
    """The short label of a GPU from its NVML name: the model, then what sets a variant's datasheet
    apart. 'NVIDIA GeForce RTX 2080 Ti' -> '2080ti', 'NVIDIA H200' -> 'h200', 'Tesla T4' -> 't4',
    'NVIDIA GeForce GTX 1060 6GB' -> 'gtx1060', 'Tesla V100-SXM2-16GB' -> 'v100', 'NVIDIA H100 PCIe'
    -> 'h100-pcie', 'NVIDIA A100-PCIE-40GB' -> 'a100-pcie-40gb', 'NVIDIA RTX 6000 Ada Generation' ->
    'rtx6000-ada', 'Quadro RTX 6000' -> 'quadro-rtx6000', 'NVIDIA H100 80GB HBM3 MIG 1g.10gb' ->
    'h100-mig-1g.10gb' (a slice, not the card)."""
    card, mig, profile = name.partition(" MIG ")
    if mig:
        return f"{gpu_label(card)}-mig-{re.sub(r'[^a-z0-9.]', '', profile.lower())}"
    words = [w for w in re.split(r"[\s\-_]+", name.lower()) if w]
    at = next((i for i, w in enumerate(words) if re.search(r"\d", w) and w != "nvidia"), None)
    if at is None:
        return re.sub(r"[^a-z0-9]", "", name.lower()) or "gpu"
    label = re.sub(r"[^a-z0-9]", "", words[at])
    if at + 1 < len(words) and words[at + 1] in ("ti", "super"):
        label += words[at + 1]
    before = words[:at]
    if before[-1:] == ["gtx"]:
        label = "gtx" + label
    elif "rtx" in before and label.isdigit() and "geforce" not in before:  # a workstation card (RTX 6000,
        label = "".join(before[before.index("rtx") :]) + label  # RTX PRO 6000), not the GeForce numbering
    if "quadro" in before:
        label = "quadro-" + label
    return "-".join([label, *(w for w in VARIANTS if w in words[at + 1 :])])


def label_of(devices: list[dict]) -> str:
    """The label of the devices a run trains on: 'h100'; mixed models 'h100_2080ti' (in CUDA's
    order); 'cpu' for none."""
    return "_".join(dict.fromkeys(gpu_label(g["name"]) for g in devices)) or "cpu"


def nvidia_evidence() -> list[str]:
    """Signs of NVIDIA devices that need no NVML: /dev/nvidia<N> and nvidia-smi on the PATH."""
    return sorted(glob.glob("/dev/nvidia[0-9]*"))[:2] + (["nvidia-smi"] if shutil.which("nvidia-smi") else [])


def driver_cuda() -> str:
    """The newest CUDA the driver supports ("12.8"), or "" without NVML: which builds can use the GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        return f"{version // 1000}.{version % 1000 // 10}"
    except Exception:
        return ""


def compute_capability() -> float | None:
    """The CUDA compute capability of the first GPU this process sees (8.0 and later have TF32
    tensor cores), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = visible_handles(pynvml)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handles[0])
        return float(f"{major}.{minor}")
    except Exception:
        return None


def visible_handles(pynvml) -> list:
    """NVML handles of the devices this process's CUDA sees, in CUDA's numbering (see visible):
    entries are indices, GPU- UUIDs (or unique prefixes) or MIG- UUIDs; a GPU in MIG mode named by
    its index is its first slice. As CUDA does, the list ends at the first entry naming none."""
    count = pynvml.nvmlDeviceGetCount()
    every = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    every = [(_slices(pynvml, h) or [h])[0] for h in every]
    entries = os.environ.get("CUDA_VISIBLE_DEVICES")
    if entries is None:
        return every
    uuids = [_text(_try(lambda h=h: pynvml.nvmlDeviceGetUUID(h), "")) for h in every]
    handles = []
    for entry in (e.strip() for e in entries.split(",")):
        if entry.isdigit() and int(entry) < count:
            handles.append(every[int(entry)])
        elif entry.startswith("GPU-") and sum(u.startswith(entry) for u in uuids) == 1:
            handles.append(every[next(i for i, u in enumerate(uuids) if u.startswith(entry))])
        elif entry.startswith("MIG-") and _try(lambda entry=entry: pynvml.nvmlDeviceGetHandleByUUID(entry)) is not None:
            handles.append(pynvml.nvmlDeviceGetHandleByUUID(entry))
        else:
            break
    return handles
