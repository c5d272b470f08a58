"""Before anything trains (sweep, run, fit, train, resume, evaluate, every executor): the label
held against the GPUs the run will use, each backend asked where it would train, and one line
with a fix that is not already done when they disagree. Also held by each worker against its own
device (`contradiction`), so that a job on another node never files its figures under this label."""

from __future__ import annotations

import contextlib
import importlib.metadata
import re

from bench.plan.knobs import SpecError
from bench.results import machine, nvml
from bench.run.backends import of

LABEL_ENV = "GPUBENCH_LABEL"  # the sweep's label, for every worker to hold its device against


# The shape of a label gpu_label makes of an NVML name ('l4', 'h100-pcie', 'rtx6000-ada',
# 'h100-mig-1g.10gb'): a model with digits first, then its variant words; 'my-box' is a free name.
GPU_LABEL_RE = re.compile(r"^(quadro-)?[a-z]{0,8}\d+[a-z]{0,5}(-[a-z0-9]+)*?(-mig-[a-z0-9.]+)?$")


def known_gpu_labels() -> set[str]:
    """The GPU labels with a profile (bench/results/profiles)."""
    from bench.results.profiles import PROFILE_DIR

    return {p.stem for p in PROFILE_DIR.glob("*.toml")} - {"cpu"}


def names_a_gpu(label: str) -> bool:
    """Whether `label` names GPUs ('h100', 'l4', 'h100-mig-1g.10gb', 'h100_2080ti'), with a profile
    or not, rather than being a free name ('my-box'): what NVML and every worker hold it against."""
    return bool(label) and all(p in known_gpu_labels() or GPU_LABEL_RE.match(p) for p in label.split("_"))


def venv_cuda_major() -> int | None:
    """The CUDA major of the installed CUDA libraries (nvidia-cuda-runtime-cuNN, torch's +cuNNN), or None."""
    runtime = machine.cuda_versions()["cuda"]
    return int(runtime.split(".")[0]) if runtime[:2].isdigit() else None


def venv_cuda_majors(packages: dict[str, str] | None = None) -> dict[int, list[str]]:
    """Each CUDA major the venv's packages are built for (nvidia-cudnn-cu12, jax-cuda13-plugin,
    nvidia-dali-cuda130, torch's +cu126), with the packages: two majors in one venv overwrite
    each other's libcudnn and NCCL."""
    if packages is None:
        packages = machine.accelerator_packages()
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages["torch"] = importlib.metadata.version("torch")
    majors: dict[int, list[str]] = {}
    for name, version in packages.items():
        found = re.search(r"\+cu(\d\d)\d$", version) if name == "torch" else re.search(r"-cu(?:da)?(\d\d)", name)
        if found:
            majors.setdefault(int(found.group(1)), []).append(name)
    return majors


def mixed_cuda(packages: dict[str, str] | None = None) -> str | None:
    """The line for a venv holding builds for more than one CUDA major, or None: what the install
    ends by checking (doctor --check)."""
    majors = venv_cuda_majors(packages)
    if len(majors) < 2:
        return None
    held = "; ".join(f"CUDA {m}: {', '.join(names[:3])}" for m, names in sorted(majors.items()))
    return f"the venv holds builds for {len(majors)} CUDA majors ({held}): `make CUDA=12` (or 13) remakes it with one"


def fix(backend: str, driver_cuda: str) -> str:
    """What gets `backend` onto the GPU here, never a command already done: the variable that keeps
    it off, the driver, a platform without its CUDA build, or the install of the venv's one CUDA
    (the backend's module says its own)."""
    driver = int(driver_cuda.split(".")[0]) if driver_cuda[:2].isdigit() else 12
    venv = venv_cuda_major() or 12
    module = of(backend)
    if kept_off := module.kept_off_gpu():
        return kept_off
    if driver < 12:
        return "update the NVIDIA driver to R525 or later (CUDA 12)"
    if no_build := module.no_gpu_build(venv):
        return no_build
    if venv > driver:
        return f"the venv holds CUDA {venv} builds and the driver runs CUDA {driver_cuda}: `make CUDA=12` remakes it"
    return module.gpu_install(venv)


def device_asked(backend: str | None) -> str | None:
    """The device a variable pins `backend` to (KERAS_TORCH_DEVICE=cuda:1, JAX_PLATFORMS=cpu), or None."""
    return of(backend).device_asked() if backend else None


def off_gpu(found: dict, answers: dict[str, dict]) -> dict[str, str]:
    """Each backend that would not train on a GPU the run is given, with what it would use instead."""
    if not (found["gpus"] or found.get("named")):
        return {}
    return {
        b: a.get("error") or f"the {a['platform'].upper()} ({', '.join(a['devices'])})"
        for b, a in answers.items()
        if a.get("platform") != "gpu"
    }


def seen(found: dict) -> str:
    """What NVML sees, in a few words: '1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54, CUDA 12.4)'."""
    gpus = found["gpus"]
    if not gpus:
        return f"no GPU ({found['gpu_note']})" if found["gpu_note"] else "no GPU"
    names = list(dict.fromkeys(g["name"] for g in gpus))
    return f"{len(gpus)} x {', '.join(names)} (driver {found['driver']}, CUDA {found['cuda_driver'] or '?'})"


def refusal(found: dict, answers: dict[str, dict], switch: str = "--gpu cpu") -> str | None:
    """One line when a backend would train on the CPU while the run is given a GPU: the backend,
    what it sees, the fix, and how to measure the CPU on purpose (`switch`)."""
    missed = off_gpu(found, answers)
    if not missed:
        return None
    backend, instead = next(iter(missed.items()))
    version = answers[backend].get("version", "")
    others = f" (also: {', '.join(list(missed)[1:])})" if len(missed) > 1 else ""
    where = f"NVML sees {seen(found)}" if found["gpus"] else f"the GPU is named ({found['named']})"
    return (
        f"{where} but {backend} {version} would train on {instead}{others}: "
        f"{fix(backend, found['cuda_driver'])}; or {switch} measures the CPU on purpose"
    )


def nvml_trouble(found: dict) -> str | None:
    """The line for --gpu auto when NVML fails on a machine with NVIDIA devices: never 'no GPU'."""
    if found["gpus"] or not found.get("evidence"):
        return None
    return (
        f"--gpu auto: {found['gpu_note']}, yet this machine has NVIDIA devices ({', '.join(found['evidence'])}): "
        "fix NVML (the driver's libnvidia-ml.so.1 must load; in a container, start it with the GPUs), "
        "or name the GPU (--gpu h100), or --gpu cpu to measure the CPU"
    )


def unnamed_trouble(found: dict) -> str | None:
    """The line for --gpu auto when CUDA_VISIBLE_DEVICES names a device NVML does not see: the run
    would quietly train on fewer GPUs, or on the CPU."""
    entry = nvml.unnamed(found["gpus"])
    if not entry or not (found["gpus"] or found.get("evidence")):
        return None
    return (
        f"--gpu auto: CUDA_VISIBLE_DEVICES names {entry}, which is none of the devices NVML sees "
        f"({seen(found)}; {', '.join(g['uuid'] or str(g['index']) for g in found['gpus']) or 'none'}): "
        "name them by index or by the UUIDs `nvidia-smi -L` lists, or --gpu cpu to measure the CPU"
    )


def auto_label(found: dict, count: int = 1, backend: str | None = None) -> str:
    """--gpu auto: the label of the GPUs a run of `count` GPUs trains on, 'cpu' without any;
    refused in one line where NVML fails beside NVIDIA devices, or CUDA_VISIBLE_DEVICES names a
    device NVML does not see."""
    trouble = nvml_trouble(found) or unnamed_trouble(found)
    if trouble:
        raise SpecError(trouble)
    return nvml.label_of(nvml.used(found["gpus"], count, device_asked(backend)))


def check_against_nvml(label: str, found: dict, count: int = 1, backend: str | None = None) -> None:
    """A label naming known GPUs must name the ones the run trains on (CUDA_VISIBLE_DEVICES,
    KERAS_TORCH_DEVICE and `gpus` decide which): figures filed under it would be another card's."""
    if not names_a_gpu(label) or (not found["gpus"] and found.get("evidence")):
        return  # a free name, or NVML failing beside NVIDIA devices: the user names the GPU
    used = nvml.used(found["gpus"], count, device_asked(backend))
    if label != nvml.label_of(used):
        where = ", ".join(f"GPU {g['index']} ({g['name']})" for g in used) or "no GPU"
        auto = nvml.label_of(used)
        raise SpecError(
            f"--gpu {label}: NVML sees {seen(found)} and the run would train on {where}, not a {label}: "
            f"use --gpu auto ({auto}), CUDA_VISIBLE_DEVICES to choose the GPU, or --gpu cpu to measure "
            f"the CPU on purpose"
        )


def check_hosts(found: dict, gpus: int, hosts: int) -> None:
    """hosts > 1 on this machine gives each process `gpus` GPUs of its own: refused when too few."""
    seen_here = nvml.visible(found["gpus"])
    if hosts > 1 and seen_here and len(seen_here) < gpus * hosts:
        raise SpecError(
            f"hosts={hosts} x gpus={gpus} needs {gpus * hosts} GPUs on this machine, "
            f"the run sees {len(seen_here)} ({seen(found)}): lower hosts or gpus"
        )


def contradiction(label: str | None, facts: dict) -> str | None:
    """Why a run on `facts` (doctor.where) must not be filed under `label`, in a few words, or None:
    'cpu' must train on the CPU (not a GPU, not Apple's MPS), 'mps' on Apple's GPU; a label naming
    GPUs on exactly those devices, a MIG slice being its own label ('h100' is not an H100's
    1g.10gb slice). A free name says nothing a device could contradict."""
    if not label or "platform" not in facts:
        return None
    where = f"{facts['platform']}: {', '.join(facts.get('devices', []))}"
    if label in ("cpu", "mps"):  # the CPU, or Apple's GPU (torch's mps device)
        ok = facts["platform"] == label
        return None if ok else f"the device it trains on ({where}) is not the {label.upper()} of the label {label}"
    if not names_a_gpu(label):
        return None
    wanted = set(label.split("_"))
    stray = [d for d in facts.get("devices", []) if nvml.gpu_label(d) not in wanted]
    if facts["platform"] == "gpu" and facts.get("devices") and not stray:
        return None
    return f"the device it trains on ({where}) is not the {label} of the label"


def given_to_workers(label: str) -> dict[str, str]:
    """What every worker started from here is given on top of this process's environment: the
    label, and CUDA numbering the GPUs in NVML's (PCI bus) order, so that device k is NVML's k for
    the sampler and the label."""
    return {LABEL_ENV: label, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
