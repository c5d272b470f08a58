"""The builds `make` installs, chosen from the driver's CUDA version: dry runs (make -n -B: every recipe
printed, whatever is installed already), nothing installed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args) -> str:
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def plan(what, driver="", cuda="auto", os="Linux", arch="x86_64", reach="yes", cc="") -> str:
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install_plan.sh"), what, driver, cuda, os, arch, reach, cc],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else f" [exit {done.returncode}]")


@pytest.mark.parametrize(
    "driver, extras",
    [
        ("", "test,tf,jax,torch,dali,fleet"),  # no GPU: the CPU builds, as CI installs them
        ("11.8", "test,tf,jax,torch,dali,fleet"),  # too old for every GPU build here
        ("12.0", "test,tf,gpu12,dali12,fleet"),
        ("12.4", "test,tf,gpu12,dali12,fleet"),
        ("13.0", "test,tf,gpu12,dali12,fleet"),  # CUDA 12 runs on R580 too, and is TensorFlow's one CUDA
    ],
)
def test_the_extras_follow_the_drivers_cuda(driver, extras):
    said = make("install-plan", f"DRIVER_CUDA={driver}", "TORCH_INDEX_REACHABLE=yes").strip()
    assert len(said.splitlines()) == 1 and said.endswith(f"extras {extras}")
    assert plan("extras", driver) == extras


def test_cuda_overrides_the_choice_and_torch_comes_from_pytorchs_index_for_cuda_12():
    assert plan("extras", "13.0", "13") == "test,tf,gpu13,dali,fleet" and plan("index", "13.0", "13") == ""
    assert plan("extras", "12.4", "cpu") == "test,tf,jax,torch,dali,fleet"
    assert plan("index", "12.4") == "https://download.pytorch.org/whl/cu126"
    assert "tensorflow on the CPU" in plan("says", "13.0", "13")


@pytest.mark.parametrize(
    "os, arch, dali", [("Darwin", "arm64", False), ("Linux", "aarch64", True), ("Linux", "x86_64", True)]
)
def test_dali_is_left_out_where_it_has_no_wheels_with_a_line_saying_so(os, arch, dali):
    assert ("dali" in plan("extras", "", "auto", os, arch)) == dali
    assert ("DALI left out" in plan("says", "", "auto", os, arch)) != dali


def test_the_venv_is_remade_when_the_extras_change():
    cpu = make("-n", "-B", "test", "DRIVER_CUDA=", "TORCH_INDEX_REACHABLE=no")
    gpu = make("-n", "-B", "test", "DRIVER_CUDA=12.4", "TORCH_INDEX_REACHABLE=yes")
    assert (
        ".venv/.installed-test-tf-jax-torch-dali-fleet" in cpu and ".venv/.installed-test-tf-gpu12-dali12-fleet" in gpu
    )
    assert "rm -rf .venv" in gpu  # a venv stamped for other extras goes
    assert "--extra-index-url https://download.pytorch.org/whl/cu126 -e '.[test,tf,gpu12,dali12,fleet]'" in gpu
    assert "pip install --quiet -c constraints.txt  -e '.[test,tf,jax,torch,dali,fleet]'" in cpu  # as before


# Driver (its CUDA) x platform x CUDA asked x PyTorch's index reachable: one CUDA major, or one refusal.
DRIVERS = {"535": "12.2", "550": "12.4", "570": "12.8", "580": "13.0"}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
@pytest.mark.parametrize("cuda", ["auto", "12", "13", "cpu"])
@pytest.mark.parametrize("reach", ["yes", "no"])
def test_every_driver_and_platform_gets_one_cuda_stack_or_one_line(driver, arch, cuda, reach):
    said = plan("says", DRIVERS[driver], cuda, "Linux", arch, reach)
    extras = plan("extras", DRIVERS[driver], cuda, "Linux", arch, reach)
    if cuda == "13" and driver != "580":
        assert said == (
            "CUDA=13 needs a driver that runs CUDA 13 (R580 or later); this one runs CUDA "
            f"{DRIVERS[driver]}: use CUDA=12, or update the driver [exit 2]"
        )
        return
    assert len(said.splitlines()) == 1
    if cuda == "cpu":
        assert (
            extras == "test,tf,jax,torch,dali,fleet" and plan("constraints", DRIVERS[driver], cuda) == "constraints.txt"
        )
    elif cuda == "13":
        assert extras == "test,tf,gpu13,dali,fleet" and "tensorflow on the CPU" in said
    else:  # CUDA 12 for every driver, R580 included
        assert extras == ("test,tf,gpu12-aarch64,dali12,fleet" if arch == "aarch64" else "test,tf,gpu12,dali12,fleet")
        assert ("its aarch64 wheels are not CUDA builds" in said) == (arch == "aarch64")
        index = plan("index", DRIVERS[driver], cuda, "Linux", arch, reach)
        pins = plan("constraints", DRIVERS[driver], cuda, "Linux", arch, reach)
        if reach == "yes":
            assert index == "https://download.pytorch.org/whl/cu126" and pins == "constraints.txt"
        else:  # never PyPI's CUDA 13 torch beside CUDA 12 TensorFlow and JAX
            assert index == "" and pins == "constraints-torch-pypi-cuda12.txt" and "torch 2.10.0 from PyPI" in said
            assert "torch==2.10.0" in (ROOT / pins).read_text().splitlines()


def test_make_runs_the_doctor_after_installing_and_stops_on_its_fix():
    recipe = make("-n", "-B", "test", "DRIVER_CUDA=12.4", "TORCH_INDEX_REACHABLE=no")
    assert "-c constraints-torch-pypi-cuda12.txt  -e '.[test,tf,gpu12,dali12,fleet]'" in recipe
    assert recipe.index("-m bench.run.doctor --check") > recipe.index("pip install --quiet -c")


# The machines people install on: (driver's CUDA, highest compute capability, platform) -> extras,
# torch's index, and a word the one line says. TensorFlow (the tf extra) is in each.
MACHINES = {
    "CPU laptop": (("", "", "x86_64"), "test,tf,jax,torch,dali,fleet", "/whl/cpu", "torch from PyTorch's cpu index"),
    "R550, A100": (("12.4", "8.0", "x86_64"), "test,tf,gpu12,dali12,fleet", "/whl/cu126", "CUDA 12 builds"),
    "R580, H100": (("13.0", "9.0", "x86_64"), "test,tf,gpu12,dali12,fleet", "/whl/cu126", "CUDA 12 builds"),
    "R580, B200": (("13.0", "10.0", "x86_64"), "test,tf,gpu12,dali12,fleet", "/whl/cu128", "Blackwell"),
    "R580, RTX 5090": (("13.0", "12.0", "x86_64"), "test,tf,gpu12,dali12,fleet", "/whl/cu128", "Blackwell"),
    "GH200, aarch64": (
        ("12.4", "9.0", "aarch64"),
        "test,tf,gpu12-aarch64,dali12,fleet",
        "/whl/cu126",
        "tensorflow on the CPU",
    ),
}


@pytest.mark.parametrize("machine", MACHINES)
def test_the_install_plan_of_each_machine(machine):
    (driver, cc, arch), extras, index, says = MACHINES[machine]
    assert plan("extras", driver, "auto", "Linux", arch, "yes", cc) == extras
    assert plan("index", driver, "auto", "Linux", arch, "yes", cc).endswith(index)
    said = plan("says", driver, "auto", "Linux", arch, "yes", cc)
    assert len(said.splitlines()) == 1 and says in said


def test_a_cpu_machine_without_pytorchs_index_is_told_what_torch_it_gets():
    said = plan("says", "", "auto", "Linux", "x86_64", "no")
    assert "PyPI's torch, whose Linux build brings CUDA 13 libraries (about 3 GB" in said
    assert plan("index", "", "auto", "Linux", "x86_64", "no") == ""
    assert plan("index", "", "auto", "Darwin", "arm64", "yes") == ""  # macOS: PyPI's torch is a CPU (and MPS) build


def test_make_asks_nvidia_smi_once_per_figure_and_the_index_not_at_all_when_told(tmp_path):
    """The Makefile's variables are asked once each (a stand-in nvidia-smi counts its calls)."""
    calls = tmp_path / "calls"
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        'case "$*" in *compute_cap*) echo 9.0; echo 10.0;; '
        '*) echo "| NVIDIA-SMI 580.65   Driver Version: 580.65   CUDA Version: 13.0 |";; esac\n'
    )
    smi.chmod(0o755)

    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "bench", "TORCH_INDEX_REACHABLE=yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )
    assert "--extra-index-url https://download.pytorch.org/whl/cu128 -e '.[test,tf,gpu12,dali12,fleet]'" in done.stdout
    assert len(calls.read_text().splitlines()) == 2  # the driver's CUDA, the compute capability
    probe = tmp_path / "python"  # stands in for the PYTHON that asks PyTorch's index: it cannot be reached
    probe.write_text(f"#!/bin/sh\necho probe >> {tmp_path / 'probes'}\nexit 1\n")
    probe.chmod(0o755)
    for target, probes in (("help", 0), ("install-plan", 1), ("test", 1)):
        (tmp_path / "probes").write_text("")
        args = ["make", "--no-print-directory", "-n", "-B", target, f"PYTHON={probe}", "DRIVER_CUDA=", "GPU_CC="]
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert len((tmp_path / "probes").read_text().splitlines()) == probes, (target, done.stdout)


NO_TENSORFLOW = """
import importlib, os, pkgutil, sys
sys.modules["tensorflow"] = None  # as on a machine without it: every import of it fails
import bench, models, pipelines
from bench.cli import main
try:
    main(["sweep", "--preset", "gpu-quick", "--set", "backend=jax", "--dry-run"])  # make gpu-check's sweep
except SystemExit as e:
    assert not e.code, e.code
os.environ["KERAS_BACKEND"] = "jax"  # as a worker on jax sets it
for package in (bench, models, pipelines):
    for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if found.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(found.name)
        except ImportError as e:
            print("NEEDS", found.name, e)
"""


@pytest.mark.slow
def test_nothing_outside_tensorflows_own_modules_needs_tensorflow():
    """gpubench installs without the tf extra (a jax/torch GPU image): the CLI plans make gpu-check's
    sweep, and every module but TensorFlow's pipeline imports, with TensorFlow made unimportable."""
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    needs = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("NEEDS ")}
    assert needs == {"pipelines.tfdata"}  # tf.data's pipeline, and only it: the blocker blocks
    assert "tensorflow" not in (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]


def test_the_install_ends_by_refusing_a_venv_of_two_cuda_majors(monkeypatch, capsys):
    from bench.results import machine
    from bench.run import doctor, gate

    one = {"nvidia-cudnn-cu12": "9.10", "jax-cuda12-plugin": "0.10.2", "nvidia-dali-cuda120": "1.50", "torch": "2.10.0"}
    assert gate.mixed_cuda({**one, "torch": "2.10.0+cu126"}) is None
    assert gate.mixed_cuda({"torch": "2.13.0+cpu", "nvidia-dali-cuda130": "2.4"}) is None
    two = {**one, "torch": "2.13.0+cu130", "nvidia-cudnn-cu13": "9.12"}
    assert gate.mixed_cuda(two) == (
        "the venv holds builds for 2 CUDA majors (CUDA 12: nvidia-cudnn-cu12, jax-cuda12-plugin, nvidia-dali-cuda120; "
        "CUDA 13: torch, nvidia-cudnn-cu13): `make CUDA=12` (or 13) remakes it with one"
    )
    monkeypatch.setattr(machine, "accelerator_packages", lambda: dict(two))
    assert doctor.main(["--check"]) == 1
    assert capsys.readouterr().err.startswith("doctor: the venv holds builds for 2 CUDA majors")


def test_make_reads_a_blackwell_card_from_nvidia_smi():
    fake = ROOT / "tests" / "fake_nvml"  # the stand-in nvidia-smi
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FAKE_NVML_GPUS": "NVIDIA B200,NVIDIA B200"}
    args = ["make", "--no-print-directory", "install-plan", "TORCH_INDEX_REACHABLE=yes"]
    said = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60).stdout
    assert "torch from PyTorch's cu128 index (Blackwell: compute capability 10.0)" in said


def test_every_package_the_code_imports_is_declared():
    """A package that comes only as another's dependency (scipy with jax) is missing where that one is
    not installed: every package bench/, models/, pipelines/ and examples/ import, at the top or in a
    function, is a dependency or an extra's."""
    import ast
    import importlib.metadata
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {re.split(r"[<>=!\[;, ]", r)[0].lower() for r in wanted}
    installed_by = importlib.metadata.packages_distributions()
    undeclared = {}
    for path in [p for folder in ("bench", "models", "pipelines", "examples") for p in (ROOT / folder).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names):
                if (ROOT / top).is_dir() or top == "__main__":
                    continue
                if not {d.lower() for d in installed_by.get(top, [top])} & declared:
                    undeclared[top] = str(path.relative_to(ROOT))
    assert undeclared == {}
