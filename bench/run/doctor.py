"""Where each backend would train, held against the GPUs NVML sees: `gpubench doctor`, the facts a
sweep writes into env.json, and the sweep's refusal to measure a CPU under a GPU's label.

`where(backend)` asks a live framework (the worker calls it for every row's train_device); `ask`
runs it for each backend in a process of its own, importing only that backend, all at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.plan.backends import BACKENDS
from bench.plan.knobs import SpecError
from bench.results import machine
from bench.results import nvml as nvml_module
from bench.run import devices, gate
from bench.run.backends import of


def where(backend: str, count: int = 1) -> dict:
    """The devices `backend` trains on in this process (the first `count`), as it names them: its
    platform (gpu, cpu, mps), their names, the CUDA and cuDNN it loaded, its default arithmetic
    for float32 matrix products and its compile cache folder."""
    facts = {
        "backend": backend,
        "version": "",
        "platform": "cpu",
        "devices": [],
        "cuda": "",
        "cudnn": "",
        "matmul": "",
        "compile_cache": str(devices.compile_cache_dir(backend)),
    }
    return {**facts, **of(backend).where(count)}


def train_device(facts: dict) -> str:
    """One row's train_device: 'gpu: NVIDIA H200', 'cpu: /device:CPU:0', 'mps: mps'."""
    return f"{facts['platform']}: {', '.join(facts['devices'])}"


def ask(backends, count: int = 1) -> dict[str, dict]:
    """where() of each backend, each in a fresh process importing only it, all at once; a backend
    that fails to start says why under 'error'."""
    started = {}
    for backend in backends:
        child_env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_DEVICE_ORDER="PCI_BUS_ID")
        started[backend] = subprocess.Popen(
            [sys.executable, "-m", "bench.run.doctor", "--where", backend, "--count", str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
    answers = {}
    for backend, child in started.items():
        try:
            out, err = child.communicate(timeout=120)
            answers[backend] = (
                json.loads(out.strip().splitlines()[-1])
                if child.returncode == 0
                else {
                    "backend": backend,
                    "error": (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1],
                }
            )
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            child.kill()
            answers[backend] = {"backend": backend, "error": f"{type(e).__name__}: {e}"}
    return answers


def installed_backends() -> list[str]:
    """The backends whose package this machine has: the ones doctor asks."""
    from bench.plan.grid import installed

    return [b.name for b in BACKENDS.values() if installed(b.package)]


def nvml() -> dict:
    """What NVML sees: the GPUs, the driver and its CUDA, or why it sees none (NVML's own error),
    and the signs of NVIDIA devices that need no NVML (a failing NVML is not 'no GPU')."""
    gpus, driver, reason = machine.nvml_gpus()
    return {
        "gpus": gpus,
        "driver": driver,
        "cuda_driver": machine.driver_cuda(),
        "gpu_note": reason,
        "evidence": nvml_module.nvidia_evidence() if reason.startswith("NVML unavailable") else [],
    }


def check(
    label: str, backends, local: bool = True, gpus: int = 1, hosts: int = 1, switch: str = "--gpu cpu"
) -> tuple[dict, dict[str, str]]:
    """Before anything trains: the label held against the GPUs the run will use, and each backend
    asked where it would train when it is given a GPU (a SpecError, one line, when one would train
    elsewhere). A label of "cpu" trains on the CPU on purpose: the GPUs are hidden from the runs.
    Jobs on other machines (local False) are held against the label by their workers
    (gate.contradiction). Returns (env.json's 'doctor' facts, the variables every worker is given
    on top of this process's environment); this process's own environment is left as it is."""
    found = nvml()
    workers = gate.given_to_workers(label)
    if label == "cpu":  # hidden from TensorFlow, torch, DALI and JAX's CUDA plugin
        return {"nvml": found, "backends": {}, "gpu_used": False}, {
            **workers,
            "CUDA_VISIBLE_DEVICES": "-1",
            "JAX_PLATFORMS": "cpu",
        }
    if not local:
        return {"nvml": found, "backends": {}, "gpu_used": None}, workers
    gate.check_against_nvml(label, found, gpus)
    gate.check_hosts(found, gpus, hosts)
    if gate.names_a_gpu(label) and not found["gpus"] and found["evidence"]:
        found = {**found, "named": label}  # NVML fails; the user named the GPU: the backends must reach one
    elif not nvml_module.used(found["gpus"], gpus):
        return {"nvml": found, "backends": {}, "gpu_used": False}, workers
    answers = ask(sorted(set(backends)), gpus)
    line = gate.refusal(found, answers, switch) or next(
        (
            f"--gpu {label}: {b}: {why}"
            for b, why in ((b, gate.contradiction(label, a)) for b, a in answers.items())
            if why
        ),
        None,
    )
    if line:
        raise SpecError(line)
    return {"nvml": found, "backends": answers, "gpu_used": True}, workers


def backend_for(gpu: str, gpus: int = 1) -> str:
    """backend=auto: the first installed backend (tensorflow, jax, torch) that trains on the GPUs
    the run is given, said in one line on standard error when it is not the first installed (on
    aarch64 or with CUDA 13, TensorFlow cannot reach the GPU where JAX or torch can). Without a GPU,
    or where none reaches it, the first installed: the sweep's check then refuses with its fix."""
    from bench.plan.grid import first_installed_backend

    first = first_installed_backend()
    found = nvml()
    if gpu == "cpu" or not nvml_module.used(found["gpus"], gpus):
        return first
    backends = installed_backends()
    answers = ask(backends, gpus)
    on_gpu = [b for b in backends if answers[b].get("platform") == "gpu"]
    if not on_gpu or on_gpu[0] == first:
        return first
    print(
        f"backend auto: {on_gpu[0]}, the first that trains on the GPU ({gate.seen(found)}); {first} would train on "
        f"{gate.off_gpu(found, answers)[first]} ({gate.fix(first, found['cuda_driver'])})",
        file=sys.stderr,
    )
    return on_gpu[0]


def facts(backends=None) -> dict:
    """What the doctor tells, as data: NVML's view and each backend's answer (env.json's 'doctor')."""
    return {"nvml": nvml(), "backends": ask(backends or installed_backends())}


def render(found: dict) -> str:
    """`gpubench doctor`'s text: NVML's view, then each backend's answer and its fix where it misses the GPU."""
    nv, answers = found["nvml"], found["backends"]
    lines = [f"NVML: {gate.seen(nv)}"]
    for g in nv["gpus"]:
        memory = f"{g['memory_mb'] / 1024:.0f} GB" if g.get("memory_mb") else "memory not reported"
        lines.append(
            f"  GPU {g['index']}: {g['name']}, {memory}, "
            f"compute capability {g.get('compute_capability') or '?'}"
            + (
                " (a MIG slice: NVML reports no utilisation for it, and it has no datasheet peak)"
                if g.get("mig")
                else ""
            )
        )
    trouble = gate.nvml_trouble(nv)
    if trouble:
        lines.append(trouble.removeprefix("--gpu auto: "))
    missed = gate.off_gpu(nv, answers)
    for backend, a in answers.items():
        if "error" in a:
            lines.append(f"{backend}: does not start: {a['error']}")
            continue
        lines.append(
            f"{backend} {a['version']}: trains on {train_device(a)}; CUDA {a['cuda'] or '-'}, "
            f"cuDNN {a['cudnn'] or '-'}; float32 matmul {a['matmul']}; compile cache {a['compile_cache']}"
        )
        if backend in missed:
            lines.append(f"  fix: {gate.fix(backend, nv['cuda_driver'])}")
    if not nv["gpus"]:
        lines.append(CPU_ONLY)
    return "\n".join(lines)


CPU_ONLY = (
    "No GPU here: worth measuring on this machine is your input pipeline (its loaders and workers, alone "
    "and feeding your model: `gpubench sweep --preset mine --gpu cpu`) and the CPU as a machine to compare "
    "(`--preset quick`); a GPU's speed is measured on a GPU machine "
    "(`gpubench report` puts them side by side)."
)


def main(argv=None) -> int:
    """`python -m bench.run.doctor`: the doctor's text, or one backend's where() as JSON (--where)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.run.doctor")
    parser.add_argument("--where", help="print where() of this backend as JSON (one process per backend)")
    parser.add_argument("--count", type=int, default=1, help="with --where: the devices a run of this many GPUs uses")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit status 1, the fix on the last line, when no installed backend reaches the GPU NVML "
        "sees; those that miss it are said, with their fix",
    )
    args = parser.parse_args(argv)
    if args.where:
        devices.hide(set(devices.FRAMEWORKS) - {args.where})
        print(json.dumps(where(args.where, args.count)))
        return 0
    if args.check and (mixed := gate.mixed_cuda()):  # the install's last check
        print(f"doctor: {mixed}", file=sys.stderr)
        return 1
    seen_now = nvml()
    if args.check and not seen_now["gpus"] and not seen_now["evidence"]:
        print(f"NVML: {gate.seen(seen_now)}: CPU builds, nothing to check")  # no backend asked: quick
        return 0
    found = {"nvml": seen_now, "backends": ask(installed_backends())}
    print(render(found))
    missed = gate.off_gpu(found["nvml"], found["backends"])
    reached = [b for b in found["backends"] if b not in missed]
    line = gate.nvml_trouble(found["nvml"]) or (None if reached else gate.refusal(found["nvml"], found["backends"]))
    if args.check and line:
        print(f"doctor: {line}", file=sys.stderr)
        return 1
    if args.check and missed:  # the presets' backend auto measures on the first that reaches the GPU
        print(
            f"doctor: {', '.join(missed)} will train on the CPU here "
            f"({gate.fix(next(iter(missed)), seen_now['cuda_driver'])}); "
            f"the presets measure on {reached[0]} (backend auto)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
