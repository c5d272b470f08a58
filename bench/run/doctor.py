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
from bench.run import devices

TORCH_CUDA12_INDEX = "https://download.pytorch.org/whl/cu126"


def where(backend: str, count: int = 1) -> dict:
    """The devices `backend` trains on in this process (the first `count`), as it names them: its
    platform (gpu, cpu, mps), their names, the CUDA and cuDNN it loaded, its default arithmetic
    for float32 matrix products and its compile cache folder."""
    facts = {"backend": backend, "version": "", "platform": "cpu", "devices": [], "cuda": "", "cudnn": "",
             "matmul": "", "compile_cache": str(devices.compile_cache_dir(backend))}
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        build = tf.sysconfig.get_build_info()
        facts.update(version=tf.__version__,
                     matmul="tf32 allowed" if tf.config.experimental.tensor_float_32_execution_enabled() else "float32")
        if gpus:  # the CUDA it was built for, which it loads with a GPU (none without)
            facts.update(platform="gpu", cuda=str(build.get("cuda_version") or ""),
                         cudnn=str(build.get("cudnn_version") or ""), devices=[tf.config.experimental.get_device_details(g).get("device_name", g.name)
                                                  for g in gpus[:count]])
        else:
            facts["devices"] = [d.name for d in tf.config.list_logical_devices("CPU")[:count]]
    elif backend == "jax":
        import jax

        found = jax.devices()[:count]
        facts.update(version=jax.__version__, platform=found[0].platform, devices=[d.device_kind for d in found],
                     matmul=str(jax.config.jax_default_matmul_precision or "default"))
        if found[0].platform == "gpu":
            facts.update(_jax_cuda())
    else:
        import torch

        facts.update(version=torch.__version__, cuda=torch.version.cuda or "",
                     cudnn=str(torch.backends.cudnn.version() or "") if torch.cuda.is_available() else "",
                     matmul=f"{torch.get_float32_matmul_precision()} (cudnn tf32 {torch.backends.cudnn.allow_tf32})")
        if torch.cuda.is_available():  # Keras's torch backend picks cuda, then mps, then cpu
            facts.update(platform="gpu", devices=[torch.cuda.get_device_name(i)
                                                  for i in range(min(count, torch.cuda.device_count()))])
        elif torch.backends.mps.is_available():
            facts.update(platform="mps", devices=["mps"])
        else:
            facts["devices"] = ["cpu"]
    return facts


def _jax_cuda() -> dict:
    """The CUDA runtime and cuDNN JAX's CUDA plugin loaded, where this jaxlib tells."""
    try:
        from jax._src.lib import cuda_versions

        def dotted(v):
            return f"{v // 1000}.{v % 1000 // 10}" if v else ""

        return {"cuda": dotted(cuda_versions.cuda_runtime_get_version()),
                "cudnn": str(cuda_versions.cudnn_get_version() or "")}
    except Exception:
        return {}


def train_device(facts: dict) -> str:
    """One row's train_device: 'gpu: NVIDIA H200', 'cpu: /device:CPU:0', 'mps: mps'."""
    return f"{facts['platform']}: {', '.join(facts['devices'])}"


def ask(backends) -> dict[str, dict]:
    """where() of each backend, each in a fresh process importing only it, all at once; a backend
    that fails to start says why under 'error'."""
    started = {}
    for backend in backends:
        child_env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        started[backend] = subprocess.Popen([sys.executable, "-m", "bench.run.doctor", "--where", backend],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env)
    answers = {}
    for backend, child in started.items():
        try:
            out, err = child.communicate(timeout=120)
            answers[backend] = json.loads(out.strip().splitlines()[-1]) if child.returncode == 0 else {
                "backend": backend, "error": (err.strip().splitlines() or ["exit status %d" % child.returncode])[-1]}
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            child.kill()
            answers[backend] = {"backend": backend, "error": f"{type(e).__name__}: {e}"}
    return answers


def installed_backends() -> list[str]:
    """The backends whose package this machine has: the ones doctor asks."""
    from bench.plan.grid import installed

    return [b.name for b in BACKENDS.values() if installed(b.package)]


def driver_cuda_major(driver_cuda: str) -> int | None:
    """12 of the driver's CUDA version '12.4'; None where it is not known."""
    try:
        return int(driver_cuda.split(".")[0])
    except ValueError:
        return None


def fix(backend: str, driver_cuda: str) -> str:
    """The command that installs `backend`'s build for the driver, the Makefile's choice
    (scripts/install_plan.sh): CUDA 12 for every driver of CUDA 12 or later, R580+ included."""
    if (driver_cuda_major(driver_cuda) or 12) < 12:
        return "update the NVIDIA driver to R525 or later (CUDA 12)"
    return {"tensorflow": "pip install 'tensorflow[and-cuda]'", "jax": "pip install 'jax[cuda12]'",
            "torch": f"pip install --force-reinstall torch==2.13.0 --index-url {TORCH_CUDA12_INDEX}"}[backend]


def nvml() -> dict:
    """What NVML sees: the GPUs, the driver and its CUDA, or why it sees none."""
    gpus, driver, reason = machine.nvml_gpus()
    return {"gpus": gpus, "driver": driver, "cuda_driver": machine.driver_cuda(), "gpu_note": reason}


def seen(found: dict) -> str:
    """What NVML sees, in a few words: '1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54, CUDA 12.4)'."""
    gpus = found["gpus"]
    if not gpus:
        return f"no GPU ({found['gpu_note']})" if found["gpu_note"] else "no GPU"
    names = sorted({g["name"] for g in gpus})
    return f"{len(gpus)} x {', '.join(names)} (driver {found['driver']}, CUDA {found['cuda_driver'] or '?'})"


def off_gpu(found: dict, answers: dict[str, dict]) -> dict[str, str]:
    """Each backend that would not train on a GPU that NVML sees, with what it would use instead."""
    if not found["gpus"]:
        return {}
    return {b: a.get("error") or f"the {a['platform'].upper()} ({', '.join(a['devices'])})"
            for b, a in answers.items() if a.get("platform") != "gpu"}


def refusal(found: dict, answers: dict[str, dict]) -> str | None:
    """One line when a backend of the sweep would train on the CPU while NVML sees a GPU: the backend,
    what it sees, the fix, and how to measure the CPU on purpose."""
    missed = off_gpu(found, answers)
    if not missed:
        return None
    backend, instead = next(iter(missed.items()))
    version = answers[backend].get("version", "")
    others = f" (also: {', '.join(list(missed)[1:])})" if len(missed) > 1 else ""
    return (f"NVML sees {seen(found)} but {backend} {version} would train on {instead}{others}: "
            f"`{fix(backend, found['cuda_driver'])}` fixes it (or `make bench`, which installs the builds for this "
            f"driver), or --gpu cpu measures the CPU on purpose")


def known_gpu_labels() -> set[str]:
    """The GPU labels with a profile (bench/results/profiles): the ones held against NVML."""
    from bench.results.profiles import PROFILE_DIR

    return {p.stem for p in PROFILE_DIR.glob("*.toml")} - {"cpu"}


def check_label(label: str, found: dict) -> None:
    """A label of a known GPU (bench/results/profiles) that NVML does not see is refused: figures filed
    under it would be another machine's."""
    names = {machine.gpu_label(g["name"]) for g in found["gpus"]}
    if label in known_gpu_labels() and label not in names:
        auto = f"--gpu auto ({sorted(names)[0]})" if names else "--gpu auto (cpu)"
        raise SpecError(f"--gpu {label}: NVML sees {seen(found)}, not a {label}: use {auto}, or --gpu cpu to "
                        f"measure the CPU on purpose")


def check(label: str, backends, local: bool = True) -> dict:
    """Before a sweep's first run: the label held against NVML, and each backend of the sweep asked
    where it would train when NVML sees a GPU (a SpecError, one line, when one would train on the
    CPU). `--gpu cpu` trains on the CPU on purpose: the GPUs are hidden from the runs. Jobs on other
    machines (local False) are not checked here. Returns env.json's 'doctor' facts."""
    found = nvml()
    if label == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # TensorFlow, torch, DALI and JAX's CUDA plugin
        os.environ["JAX_PLATFORMS"] = "cpu"
        return {"nvml": found, "backends": {}, "gpu_used": False}
    if not local:
        return {"nvml": found, "backends": {}, "gpu_used": None}
    check_label(label, found)
    if not found["gpus"]:
        return {"nvml": found, "backends": {}, "gpu_used": False}
    answers = ask(sorted(set(backends)))
    line = refusal(found, answers)
    if line:
        raise SpecError(line)
    return {"nvml": found, "backends": answers, "gpu_used": True}


def facts(backends=None) -> dict:
    """What the doctor tells, as data: NVML's view and each backend's answer (env.json's 'doctor')."""
    return {"nvml": nvml(), "backends": ask(backends or installed_backends())}


def render(found: dict) -> str:
    """`gpubench doctor`'s text: NVML's view, then each backend's answer and its fix where it misses the GPU."""
    nv, answers = found["nvml"], found["backends"]
    lines = [f"NVML: {seen(nv)}"]
    for g in nv["gpus"]:
        lines.append(f"  GPU {g['index']}: {g['name']}, {g['memory_mb'] / 1024:.0f} GB, "
                     f"compute capability {g['compute_capability']}")
    missed = off_gpu(nv, answers)
    for backend, a in answers.items():
        if "error" in a:
            lines.append(f"{backend}: does not start: {a['error']}")
            continue
        lines.append(f"{backend} {a['version']}: trains on {train_device(a)}; CUDA {a['cuda'] or '-'}, "
                     f"cuDNN {a['cudnn'] or '-'}; float32 matmul {a['matmul']}; compile cache {a['compile_cache']}")
        if backend in missed:
            lines.append(f"  fix: {fix(backend, nv['cuda_driver'])}")
    if not nv["gpus"]:
        lines.append(CPU_ONLY)
    return "\n".join(lines)


CPU_ONLY = ("No GPU here: worth measuring on this machine is your input pipeline (its loaders and workers, alone "
            "and feeding your model: `gpubench sweep --preset mine --gpu cpu`) and the CPU as a machine to compare "
            "(`--preset quick`); a GPU's speed is measured on a GPU machine (`gpubench report` puts them side by side).")


def main(argv=None) -> int:
    """`python -m bench.run.doctor`: the doctor's text, or one backend's where() as JSON (--where)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.doctor")
    parser.add_argument("--where", help="print where() of this backend as JSON (one process per backend)")
    args = parser.parse_args(argv)
    if args.where:
        devices.hide(set(devices.FRAMEWORKS) - {args.where})
        print(json.dumps(where(args.where)))
        return 0
    print(render(facts()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
