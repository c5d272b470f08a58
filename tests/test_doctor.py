"""Where the backends train, held against what NVML sees: the doctor, the sweep's refusal, --gpu cpu.

The GPU machine is stood in for by tests/fake_nvml/pynvml.py (one RTX 2080 Ti unless told
otherwise), imported as pynvml in this process; the slow tests ask the real backends, each in
its own process as the doctor does, once for all of them (`asked`)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from bench.plan.knobs import RunSpec, SpecError
from bench.results.record import RunRecord
from bench.run import doctor, gate
from tests.conftest import render_rows

FAKE_NVML = Path(__file__).parent / "fake_nvml"
SEES_2080TI = {
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA GeForce RTX 2080 Ti",
            "memory_mb": 11264.0,
            "uuid": "GPU-1",
            "power_limit_w": 250.0,
            "compute_capability": 7.5,
            "mig": False,
        }
    ],
    "driver": "550.54.14",
    "cuda_driver": "12.4",
    "gpu_note": "",
    "evidence": [],
}
SEES_NONE = {"gpus": [], "driver": "", "cuda_driver": "", "gpu_note": "NVML unavailable", "evidence": []}


def answer(backend, platform, devices=("cpu",)):
    return {
        "backend": backend,
        "version": "1.0",
        "platform": platform,
        "devices": list(devices),
        "cuda": "",
        "cudnn": "",
        "matmul": "",
        "compile_cache": "/c",
    }


@pytest.fixture(scope="module")
def asked() -> dict:
    """The real backends' answers (doctor.ask: a process for each), by backend and GPU count, as
    the module's tests ask for them."""
    return {}


@pytest.fixture
def gpu_machine(monkeypatch, asked):
    """This process on the stand-in GPU machine, its backends asked once for the module (`asked`)."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_NVML / "pynvml.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    ask = doctor.ask

    def once(backends, count=1):
        missing = [b for b in backends if (b, count) not in asked]
        asked.update({(b, count): answer for b, answer in (ask(missing, count) if missing else {}).items()})
        return {b: asked[(b, count)] for b in backends}

    monkeypatch.setattr(doctor, "ask", once)


def test_a_backend_on_the_cpu_beside_a_gpu_is_refused_in_one_line_with_its_fix():
    line = gate.refusal(
        SEES_2080TI,
        {
            "jax": answer("jax", "gpu", ["NVIDIA GeForce RTX 2080 Ti"]),
            "tensorflow": answer("tensorflow", "cpu", ["/device:CPU:0"]),
        },
    )
    assert "\n" not in line
    assert line.startswith("NVML sees 1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54.14, CUDA 12.4) but tensorflow")
    assert "the CPU (/device:CPU:0)" in line and "--gpu cpu" in line
    assert "pip install 'tensorflow[and-cuda]'" in line or "aarch64" in line or "CUDA 13" in line
    assert gate.refusal(SEES_2080TI, {"jax": answer("jax", "gpu")}) is None
    assert gate.refusal(SEES_NONE, {"tensorflow": answer("tensorflow", "cpu")}) is None  # nothing to miss


def test_mps_and_a_backend_that_does_not_start_count_as_missing_the_gpu():
    missed = gate.off_gpu(
        SEES_2080TI,
        {"torch": answer("torch", "mps", ["mps"]), "jax": {"backend": "jax", "error": "ImportError: no jaxlib"}},
    )
    assert missed == {"torch": "the MPS (mps)", "jax": "ImportError: no jaxlib"}


@pytest.mark.parametrize("driver_cuda", ["12.4", "13.0"])
def test_the_fix_installs_the_cuda_12_builds_make_picks_for_the_driver(driver_cuda, monkeypatch):
    monkeypatch.setattr(gate, "venv_cuda_major", lambda: None)  # this venv's CPU builds
    assert gate.fix("jax", driver_cuda) == "pip install 'jax[cuda12]'"
    assert "torch==2.10.0 (PyPI's CUDA 12 build" in gate.fix("torch", driver_cuda)
    assert gate.fix("jax", "11.4").startswith("update the NVIDIA driver")


def test_a_gpu_label_that_nvml_contradicts_is_refused():
    with pytest.raises(
        SpecError, match=r"--gpu h200: NVML sees 1 x NVIDIA GeForce RTX 2080 Ti .* --gpu auto \(2080ti\)"
    ):
        gate.check_against_nvml("h200", SEES_2080TI)
    with pytest.raises(SpecError, match=r"--gpu 2080ti: NVML sees no GPU"):
        gate.check_against_nvml("2080ti", SEES_NONE)
    gate.check_against_nvml("2080ti", SEES_2080TI)
    gate.check_against_nvml("my-box", SEES_NONE)  # a label of no known GPU says nothing NVML could contradict


def test_gpu_cpu_hides_the_gpus_from_the_runs_and_asks_no_backend(monkeypatch):
    monkeypatch.setattr(doctor, "nvml", lambda: SEES_2080TI)
    monkeypatch.setattr(doctor, "ask", lambda backends, count=1: pytest.fail("asked the backends"))
    before = dict(os.environ)
    checked, given = doctor.check("cpu", {"tensorflow"})
    assert checked["gpu_used"] is False
    assert given == {
        "CUDA_VISIBLE_DEVICES": "-1",
        "JAX_PLATFORMS": "cpu",
        gate.LABEL_ENV: "cpu",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert dict(os.environ) == before  # the workers are given them; this process is left as it was


def test_the_sweep_asks_the_backends_only_when_nvml_sees_a_gpu(monkeypatch):
    asked = []
    monkeypatch.setattr(
        doctor,
        "ask",
        lambda backends, count=1: (
            asked.append(backends) or {b: answer(b, "gpu", ["NVIDIA GeForce RTX 2080 Ti"]) for b in backends}
        ),
    )
    monkeypatch.setattr(doctor, "nvml", lambda: SEES_NONE)
    assert doctor.check("cpu-box", {"tensorflow"})[0]["gpu_used"] is False and asked == []
    monkeypatch.setattr(doctor, "nvml", lambda: SEES_2080TI)
    checked, given = doctor.check("2080ti", {"jax", "torch"})
    assert checked["gpu_used"] is True and asked == [["jax", "torch"]]
    assert given == {gate.LABEL_ENV: "2080ti", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert doctor.check("2080ti", {"jax"}, local=False)[0]["gpu_used"] is None and len(asked) == 1  # jobs run elsewhere


@pytest.mark.slow  # runs a framework in this process
def test_where_names_the_device_this_process_trains_on():
    import keras

    facts = doctor.where(keras.backend.backend())
    assert facts["platform"] == "cpu" and facts["devices"] and facts["cuda"] == ""  # no GPU here
    assert doctor.train_device(facts).startswith("cpu: ")


def test_a_report_of_cpu_training_on_a_gpu_machine_leaves_the_gpu_figures_out():
    spec = RunSpec(backbone="tiny", input_size=32, batch=8)
    rows = [
        RunRecord.for_spec(
            spec,
            status="ok",
            total_s=1.0,
            train_img_s=10.0,
            train_steps=3,
            val_steps=1,
            cpu_util_mean=50.0,
            cpu_util_p90=60.0,
            gpu_util_mean=0.0,
            gpu_util_p90=0.0,
            gpu_mem_peak_mb=300.0,
            train_device="cpu: /device:CPU:0",
            loader="x",
        ).to_dict()
    ]
    env = {"gpus": SEES_2080TI["gpus"], "driver": "550.54.14", "cpu_threads": 2}
    text = render_rows(rows, env, {"preset": "t", "gpu": "cpu", "gpu_used": False})
    assert "- The GPU was not used: `--gpu cpu` trained on the CPU on purpose" in text
    assert "- Trained on: tensorflow on cpu: /device:CPU:0" in text
    utilisation = text.split("GPU memory peak:")[1].split("##")[0]
    cells = [c.strip() for line in utilisation.splitlines() if line.startswith("| 8") for c in line.split("|")[2:-1]]
    assert cells == ["CPU 50% (p90 60%)"]
    assert "What would feed this GPU" not in text
    with_gpu = render_rows(rows, env, {"preset": "t", "gpu": "2080ti"})
    assert "GPU 0% (p90 0%)" in with_gpu.split("GPU memory peak:")[1]


@pytest.mark.slow
@pytest.mark.xdist_group("doctor")
def test_a_new_user_on_a_gpu_machine_with_cpu_builds_is_refused_before_the_first_run(tmp_path, cli, gpu_machine):
    done = cli("sweep", "--preset", "smoke", "--set", "backend=jax")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpubench: error: NVML sees 1 x NVIDIA GeForce RTX 2080 Ti")
    assert "jax" in lines[0] and "pip install 'jax[cuda12]'" in lines[0]
    assert not (tmp_path / "results").exists()  # nothing made, nothing measured
    wrong = cli("sweep", "--preset", "smoke", "--gpu", "h200")
    assert wrong.returncode == 2 and "--gpu h200: NVML sees 1 x NVIDIA GeForce RTX 2080 Ti" in wrong.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("doctor")
def test_the_doctor_answers_for_every_installed_backend(cli, gpu_machine, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_CUDA", "13.0")
    done = cli("doctor")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "NVML: 1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54.14, CUDA 13.0)"
    for backend in doctor.installed_backends():
        said = next(line for line in lines if line.startswith(f"{backend} "))
        assert ": trains on cpu: " in said and "compile cache" in said
        assert lines[lines.index(said) + 1].startswith("  fix: pip install")


def test_on_a_cpu_only_machine_the_doctor_says_what_is_worth_measuring_there():
    text = doctor.render({"nvml": SEES_NONE, "backends": {"tensorflow": answer("tensorflow", "cpu")}})
    assert text.splitlines()[-1] == doctor.CPU_ONLY and "--preset mine --gpu cpu" in text
    assert doctor.CPU_ONLY not in doctor.render({"nvml": SEES_2080TI, "backends": {}})
