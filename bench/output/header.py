"""The report's header: the machine every figure was measured on (CPU, what a container gives, GPUs
and who else computed on them, the frameworks) and where each backend's runs trained."""

from __future__ import annotations

from bench.plan.backends import BACKENDS
from bench.results.machine import short_commit


def machine(env: dict) -> list[str]:
    """The machine lines of a report: CPU, GPUs, driver, CUDA, the frameworks' versions."""
    if not env:
        return ["Machine: unknown (no env.json in this folder)."]
    gpus = env.get("gpus") or []
    if gpus:
        names = ", ".join(
            f"{g['name']} ({g['memory_mb'] / 1024:.0f} GB)" if g.get("memory_mb") else g["name"] for g in gpus
        )
        gpu_line = (
            f"GPUs: {names}; driver {env.get('driver')}, CUDA {env.get('cuda') or '?'}, cuDNN {env.get('cudnn') or '?'}"
        )
    else:
        gpu_line = f"GPUs: none; the GPU columns are empty ({env.get('gpu_note') or 'no NVML'})"
    return [
        f"- CPU: {env.get('cpu')}, {env.get('cpu_threads')} threads, {env.get('ram_gb')} GB RAM; {env.get('os')}"
        + container_gives(env),
        f"- {gpu_line}",
        *others_on_gpu(gpus),
        f"- Python {env.get('python')}, Keras {env.get('keras')}, {_backends(env)}; "
        f"gpubench {env.get('gpubench')} (commit {short_commit(env.get('commit') or 'unknown')})",
    ]


def container_gives(env: dict) -> str:
    """What the container (its cgroup quota or cpuset) gives the run, where it is less than the host."""
    cpus, ram = env.get("cpu_limit") or 0, env.get("ram_limit_gb") or 0  # bench/results/container.py
    given = [f"{env.get('cpu_cores')} cores (a limit of {cpus:g} CPUs)"] * bool(cpus) + [f"{ram:g} GB"] * bool(ram)
    return f"; the container gives the run {' and '.join(given)}" if given else ""


def others_on_gpu(gpus: list[dict]) -> list[str]:
    """A line where other processes computed on the GPUs as the sweep began (NVML's figures are the device's)."""
    others, mps = sorted({p for g in gpus for p in g.get("others") or []}), any(g.get("mps") for g in gpus)
    said = f"{' (CUDA MPS)' * mps}: {len(others)} {others[:5]}: GPU utilisation, power and memory count theirs too"
    return [f"- Other processes on the GPU as the sweep began{said}"] * bool(others or mps)


def trained_on(rows: list[dict]) -> list[str]:
    """Where each backend's runs trained, as the backends said (the rows' train_device)."""
    seen = sorted(
        {(r.get("backend"), r.get("train_device"), r.get("train_cuda") or "") for r in rows if r.get("train_device")}
    )
    return (
        ["- Trained on: " + "; ".join(f"{b} on {d}" + (f" (CUDA {c})" if c else "") for b, d, c in seen)]
        if seen
        else []
    )


def _backends(env: dict) -> str:
    """The backends installed, with versions (TensorFlow alone in env.json files before jax and torch)."""
    found = [f"{b.title} {env[name]}" for name, b in BACKENDS.items() if env.get(name)]
    return ", ".join(found) or "no backend recorded"
