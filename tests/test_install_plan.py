"""The builds `make` installs, chosen from the driver's CUDA version: dry runs (make -n -B: every recipe
printed, whatever is installed already), nothing installed."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args) -> str:
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def plan(what, driver="", cuda="auto", os="Linux", arch="x86_64", reach="yes") -> str:
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install_plan.sh"), what, driver, cuda, os, arch, reach],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else f" [exit {done.returncode}]")


@pytest.mark.parametrize(
    "driver, extras",
    [
        ("", "test,jax,torch,dali,fleet"),  # no GPU: the CPU builds, as CI installs them
        ("11.8", "test,jax,torch,dali,fleet"),  # too old for every GPU build here
        ("12.0", "test,gpu12,dali12,fleet"),
        ("12.4", "test,gpu12,dali12,fleet"),
        ("13.0", "test,gpu12,dali12,fleet"),  # CUDA 12 runs on R580 too, and is TensorFlow's one CUDA
    ],
)
def test_the_extras_follow_the_drivers_cuda(driver, extras):
    said = make("install-plan", f"DRIVER_CUDA={driver}", "TORCH_INDEX_REACHABLE=yes").strip()
    assert len(said.splitlines()) == 1 and said.endswith(f"extras {extras}")
    assert plan("extras", driver) == extras


def test_cuda_overrides_the_choice_and_torch_comes_from_pytorchs_index_for_cuda_12():
    assert plan("extras", "13.0", "13") == "test,gpu13,dali,fleet" and plan("index", "13.0", "13") == ""
    assert plan("extras", "12.4", "cpu") == "test,jax,torch,dali,fleet"
    assert plan("index", "12.4") == "https://download.pytorch.org/whl/cu126"
    assert "tensorflow on the CPU" in plan("says", "13.0", "13")


@pytest.mark.parametrize(
    "os, arch, dali", [("Darwin", "arm64", False), ("Linux", "aarch64", True), ("Linux", "x86_64", True)]
)
def test_dali_is_left_out_where_it_has_no_wheels_with_a_line_saying_so(os, arch, dali):
    assert ("dali" in plan("extras", "", "auto", os, arch)) == dali
    assert ("DALI left out" in plan("says", "", "auto", os, arch)) != dali


def test_the_venv_is_remade_when_the_extras_change():
    cpu = make("-n", "-B", "test", "DRIVER_CUDA=")
    gpu = make("-n", "-B", "test", "DRIVER_CUDA=12.4", "TORCH_INDEX_REACHABLE=yes")
    assert ".venv/.installed-test-jax-torch-dali-fleet" in cpu and ".venv/.installed-test-gpu12-dali12-fleet" in gpu
    assert "rm -rf .venv" in gpu  # a venv stamped for other extras goes
    assert "--extra-index-url https://download.pytorch.org/whl/cu126 -e '.[test,gpu12,dali12,fleet]'" in gpu
    assert "pip install --quiet -c constraints.txt  -e '.[test,jax,torch,dali,fleet]'" in cpu  # as before


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
        assert extras == "test,jax,torch,dali,fleet" and plan("constraints", DRIVERS[driver], cuda) == "constraints.txt"
    elif cuda == "13":
        assert extras == "test,gpu13,dali,fleet" and "tensorflow on the CPU" in said
    else:  # CUDA 12 for every driver, R580 included
        assert extras == ("test,gpu12-aarch64,dali12,fleet" if arch == "aarch64" else "test,gpu12,dali12,fleet")
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
    assert "-c constraints-torch-pypi-cuda12.txt  -e '.[test,gpu12,dali12,fleet]'" in recipe
    assert recipe.index("-m bench.run.doctor --check") > recipe.index("pip install --quiet -c")
