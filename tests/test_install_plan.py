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


def plan(what, driver="", cuda="auto", os="Linux", arch="x86_64") -> str:
    return subprocess.run(["sh", str(ROOT / "scripts" / "install_plan.sh"), what, driver, cuda, os, arch],
                          capture_output=True, text=True, timeout=10).stdout.strip()


@pytest.mark.parametrize("driver, extras", [
    ("", "test,jax,torch,dali,fleet"),  # no GPU: the CPU builds, as CI installs them
    ("11.8", "test,jax,torch,dali,fleet"),  # too old for every GPU build here
    ("12.0", "test,gpu12,dali12,fleet"),
    ("12.4", "test,gpu12,dali12,fleet"),
    ("13.0", "test,gpu12,dali12,fleet"),  # CUDA 12 runs on R580 too, and is TensorFlow's one CUDA
])
def test_the_extras_follow_the_drivers_cuda(driver, extras):
    said = make("install-plan", f"DRIVER_CUDA={driver}").strip()
    assert len(said.splitlines()) == 1 and said.endswith(f"extras {extras}")
    assert plan("extras", driver) == extras


def test_cuda_overrides_the_choice_and_torch_comes_from_pytorchs_index_for_cuda_12():
    assert plan("extras", "13.0", "13") == "test,gpu13,dali,fleet" and plan("index", "13.0", "13") == ""
    assert plan("extras", "12.4", "cpu") == "test,jax,torch,dali,fleet"
    assert plan("index", "12.4") == "https://download.pytorch.org/whl/cu126"
    assert "tensorflow on the CPU" in plan("says", "13.0", "13")


@pytest.mark.parametrize("os, arch, dali", [("Darwin", "arm64", False), ("Linux", "aarch64", True),
                                            ("Linux", "x86_64", True)])
def test_dali_is_left_out_where_it_has_no_wheels_with_a_line_saying_so(os, arch, dali):
    assert ("dali" in plan("extras", "", "auto", os, arch)) == dali
    assert ("DALI left out" in plan("says", "", "auto", os, arch)) != dali


def test_the_venv_is_remade_when_the_extras_change():
    cpu = make("-n", "-B", "test", "DRIVER_CUDA=")
    gpu = make("-n", "-B", "test", "DRIVER_CUDA=12.4")
    assert ".venv/.installed-test-jax-torch-dali-fleet" in cpu and ".venv/.installed-test-gpu12-dali12-fleet" in gpu
    assert "rm -rf .venv" in gpu  # a venv stamped for other extras goes
    assert "--extra-index-url https://download.pytorch.org/whl/cu126 -e '.[test,gpu12,dali12,fleet]'" in gpu
    assert "pip install --quiet -c constraints.txt  -e '.[test,jax,torch,dali,fleet]'" in cpu  # as before
