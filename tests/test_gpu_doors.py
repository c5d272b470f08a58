"""Every door of a GPU machine, on the stand-in one (tests/fake_nvml: NVML and nvidia-smi as the
environment describes them): each case goes through the command's own checks and ends measured,
refused with its line, or labelled as what. The backends' answers are stood in for (this machine's
frameworks are CPU builds); the slow tests of test_doctor.py ask the real ones."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import session
from bench.cli import main
from bench.plan.grid import one_point
from bench.plan.knobs import SpecError
from bench.run import doctor, gate

FAKE = Path(__file__).parent / "fake_nvml"
TI, H100 = "NVIDIA GeForce RTX 2080 Ti", "NVIDIA H100 80GB HBM3"
TOUCHED = (
    "CUDA_VISIBLE_DEVICES",
    "JAX_PLATFORMS",
    "KERAS_TORCH_DEVICE",
    "CUDA_DEVICE_ORDER",
    gate.LABEL_ENV,
    "FAKE_NVML_GPUS",
    "FAKE_NVML_MIG",
    "FAKE_NVML_FAIL",
    "FAKE_NVML_CUDA",
)


@pytest.fixture
def machine(monkeypatch):
    """The stand-in GPU machine: `machine(variables, answers)`; answers: backend -> device it trains on."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKE / "pynvml.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    for name in TOUCHED:  # whatever a check sets is put back
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    def on(variables: dict, answers: dict, smi: bool = True):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE)] * smi + [os.environ["PATH"]]))
        monkeypatch.setattr(
            doctor, "ask", lambda backends, count=1: {b: answer(b, answers.get(b, "cpu")) for b in backends}
        )

    return on


def answer(backend: str, device: str) -> dict:
    platform = "cpu" if device in ("cpu", "mps") else "gpu"
    return {
        "backend": backend,
        "version": "1.0",
        "platform": device if device == "mps" else platform,
        "devices": [device],
        "cuda": "12.4" if platform == "gpu" else "",
        "cudnn": "",
        "matmul": "",
        "compile_cache": "/c",
    }


# (case, the machine, the backends' devices, the command's arguments, exit status, its line or None)
SWEEPS = [
    ("one GPU, jax reaches it", {}, {"jax": TI}, ["--set", "backend=jax"], 0, None),
    ("tensorflow misses the GPU, jax reaches it: the preset's backend auto takes jax", {}, {"jax": TI}, [], 0, None),
    (
        "tensorflow asked for, and it misses the GPU",
        {},
        {"jax": TI},
        ["--set", "backend=tensorflow"],
        2,
        "NVML sees 1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54.14, CUDA 12.4) but tensorflow 1.0 would train on the "
        "CPU (cpu)",
    ),
    (
        "no backend reaches the GPU: auto's first is refused with its fix",
        {},
        {},
        [],
        2,
        "NVML sees 1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54.14, CUDA 12.4) but tensorflow 1.0 would train on the "
        "CPU (cpu)",
    ),
    (
        "NVML fails beside nvidia-smi",
        {"FAKE_NVML_FAIL": "nvmlInit"},
        {"jax": TI},
        ["--set", "backend=jax"],
        2,
        "--gpu auto: NVML unavailable: NVMLError_LibraryNotFound: NVML Shared Library Not Found, yet this machine has "
        "NVIDIA devices (nvidia-smi): fix NVML",
    ),
    (
        "NVML fails, the GPU named",
        {"FAKE_NVML_FAIL": "nvmlInit"},
        {"jax": TI},
        ["--set", "backend=jax", "--gpu", "2080ti"],
        0,
        None,
    ),
    (
        "NVML fails, the GPU named, jax on the CPU",
        {"FAKE_NVML_FAIL": "nvmlInit"},
        {},
        ["--set", "backend=jax", "--gpu", "2080ti"],
        2,
        "the GPU is named (2080ti) but jax 1.0 would train on the CPU (cpu)",
    ),
    (
        "a card without power or memory queries",
        {"FAKE_NVML_FAIL": "nvmlDeviceGetEnforcedPowerLimit,nvmlDeviceGetMemoryInfo"},
        {"jax": TI},
        ["--set", "backend=jax", "--gpu", "2080ti"],
        0,
        None,
    ),
    (
        "two GPUs, the run given the H100, labelled 2080ti",
        {"FAKE_NVML_GPUS": f"{TI},{H100}", "CUDA_VISIBLE_DEVICES": "1"},
        {"jax": H100},
        ["--set", "backend=jax", "--gpu", "2080ti"],
        2,
        "--gpu 2080ti: NVML sees 2 x NVIDIA GeForce RTX 2080 Ti, NVIDIA H100 80GB HBM3 (driver 550.54.14, CUDA 12.4) "
        "and the run would train on GPU 1 (NVIDIA H100 80GB HBM3), not a 2080ti",
    ),
    (
        "two GPUs, the run given the H100, labelled h100",
        {"FAKE_NVML_GPUS": f"{TI},{H100}", "CUDA_VISIBLE_DEVICES": "1"},
        {"jax": H100},
        ["--set", "backend=jax", "--gpu", "h100"],
        0,
        None,
    ),
    (
        "torch kept on the CPU by KERAS_TORCH_DEVICE",
        {"KERAS_TORCH_DEVICE": "cpu"},
        {"torch": "cpu"},
        ["--set", "backend=torch"],
        2,
        "unset KERAS_TORCH_DEVICE=cpu",
    ),
    (
        "torch on cuda:1 of a 2080 Ti and an H100, labelled 2080ti",
        {"FAKE_NVML_GPUS": f"{TI},{H100}", "KERAS_TORCH_DEVICE": "cuda:1"},
        {"torch": H100},
        ["--set", "backend=torch", "--gpu", "2080ti"],
        2,
        "--gpu 2080ti: torch: the device it trains on (gpu: NVIDIA H100 80GB HBM3) is not the 2080ti of the label",
    ),
    (
        "two processes on one GPU",
        {},
        {"jax": TI},
        ["--set", "backend=jax", "--set", "hosts=2"],
        2,
        "hosts=2 x gpus=1 needs 2 GPUs on this machine, the run sees 1",
    ),
    (
        "two processes on two GPUs",
        {"FAKE_NVML_GPUS": f"{H100},{H100}"},
        {"jax": H100},
        ["--set", "backend=jax", "--set", "hosts=2"],
        0,
        None,
    ),
    (
        "a MIG slice labelled as its card",
        {"FAKE_NVML_GPUS": H100, "FAKE_NVML_MIG": "1g.10gb,1g.10gb"},
        {"jax": f"{H100} MIG 1g.10gb"},
        ["--set", "backend=jax", "--gpu", "h100"],
        2,
        "--gpu h100: NVML sees 2 x NVIDIA H100 80GB HBM3 MIG 1g.10gb",
    ),
    ("submitit-local is checked as local is", {}, {}, ["--executor", "submitit-local"], 2, "NVML sees 1 x"),
    ("no GPU at all", {"FAKE_NVML_GPUS": ""}, {}, [], 0, None),
    ("--gpu cpu on a GPU machine", {}, {}, ["--gpu", "cpu"], 0, None),
]


@pytest.mark.parametrize("case, variables, answers, args, status, line", SWEEPS, ids=[c[0] for c in SWEEPS])
def test_a_sweep_on_each_gpu_machine_is_measured_or_refused_in_one_line(
    machine, capsys, case, variables, answers, args, status, line
):
    machine(variables, answers)
    assert main(["sweep", "--preset", "smoke", "--dry-run", *args]) == status
    err = capsys.readouterr().err.strip().splitlines()
    if line is None:
        assert not [message for message in err if "error" in message]
    else:
        assert len(err) == 1 and err[0].startswith("gpubench: error: ") and line in err[0], err


def test_backend_auto_takes_the_first_that_trains_on_the_gpu_and_says_why_in_one_line(machine, capsys):
    machine({}, {"torch": TI, "jax": TI})
    assert main(["sweep", "--preset", "quick", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "backend=jax" in out.splitlines()[0]  # jax before torch, in the knob's order
    line = [message for message in err.splitlines() if message.startswith("backend auto:")]
    assert (
        len(line) == 1 and "jax, the first that trains on the GPU" in line[0] and "tensorflow would train on" in line[0]
    )
    machine({"FAKE_NVML_GPUS": ""}, {})
    assert main(["sweep", "--preset", "quick", "--dry-run"]) == 0  # no GPU: the first installed, said nowhere
    out, err = capsys.readouterr()
    assert "backend=tensorflow" in out.splitlines()[0] and "backend auto" not in err


@pytest.mark.parametrize(
    "answers, status, line",
    [
        ({"tensorflow": TI, "jax": TI, "torch": TI}, 0, None),
        (
            {"jax": TI},
            0,
            "doctor: tensorflow, torch will train on the CPU here (pip install 'tensorflow[and-cuda]'); "
            "the presets measure on jax (backend auto)",
        ),
        (
            {},
            1,
            "doctor: NVML sees 1 x NVIDIA GeForce RTX 2080 Ti (driver 550.54.14, CUDA 12.4) but tensorflow 1.0 "
            "would train",
        ),
    ],
)
def test_the_check_after_install_stops_only_where_no_backend_reaches_the_gpu(
    machine, capsys, monkeypatch, answers, status, line
):
    """`make` runs it: a TensorFlow that cannot reach the GPU (aarch64, CUDA 13) beside a JAX that can
    is said, and `make bench` goes on, measuring on JAX."""
    machine({}, answers)
    monkeypatch.setattr(doctor, "installed_backends", lambda: ["tensorflow", "jax", "torch"])
    assert doctor.main(["--check"]) == status
    err = capsys.readouterr().err.strip()
    assert (line in err) if line else err == ""


@pytest.mark.parametrize(
    "variables, count, label",
    [
        ({}, 1, "2080ti"),
        # the GPU the run uses, not NVML's first
        ({"FAKE_NVML_GPUS": f"{TI},{H100}", "CUDA_VISIBLE_DEVICES": "1"}, 1, "h100"),
        ({"FAKE_NVML_GPUS": f"{TI},{H100}"}, 2, "2080ti_h100"),  # mixed GPUs: the ones used, in order
        ({"FAKE_NVML_GPUS": f"{TI},{H100}", "CUDA_VISIBLE_DEVICES": "GPU-fake-1,GPU-fake-0"}, 1, "h100"),
        (
            {"FAKE_NVML_GPUS": H100, "FAKE_NVML_MIG": "1g.10gb,2g.20gb", "CUDA_VISIBLE_DEVICES": "MIG-fake-0-1"},
            1,
            "h100-mig-2g.20gb",
        ),
        ({"FAKE_NVML_GPUS": H100, "FAKE_NVML_MIG": "1g.10gb"}, 1, "h100-mig-1g.10gb"),
        ({"FAKE_NVML_GPUS": ""}, 1, "cpu"),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 1, "cpu"),
    ],
)
def test_gpu_auto_names_the_gpus_the_run_trains_on(machine, variables, count, label):
    names = {
        "2080ti": TI,
        "h100": H100,
        "h100-mig-2g.20gb": f"{H100} MIG 2g.20gb",
        "h100-mig-1g.10gb": f"{H100} MIG 1g.10gb",
    }
    machine(variables, {"jax": names.get(label, H100)})
    grid = [one_point({"backend": "jax", "gpus": count, "backbone": "tiny"})]
    assert session.checked_label("auto", grid)[0] == label


@pytest.mark.parametrize(
    "label, trained_on, wrong",
    [
        ("h100", answer("jax", H100), None),
        (
            "h100",
            answer("jax", TI),
            "the device it trains on (gpu: NVIDIA GeForce RTX 2080 Ti) is not the h100 of the label",
        ),
        ("h100", answer("jax", "cpu"), "the device it trains on (cpu: cpu) is not the h100 of the label"),
        ("h100-mig-1g.10gb", answer("jax", f"{H100} MIG 1g.10gb"), None),
        (
            "h100",  # a slice is not its card: its figures are a seventh of it
            answer("jax", f"{H100} MIG 1g.10gb"),
            f"the device it trains on (gpu: {H100} MIG 1g.10gb) is not the h100 of the label",
        ),
        ("cpu", answer("jax", "cpu"), None),
        ("cpu", answer("jax", TI), f"the device it trains on (gpu: {TI}) is not the CPU of the label cpu"),
        ("cpu", answer("torch", "mps"), "the device it trains on (mps: mps) is not the CPU of the label cpu"),
        ("a6000", answer("jax", "NVIDIA RTX A6000"), None),  # no datasheet, still a GPU's label
        ("a6000", answer("jax", TI), f"the device it trains on (gpu: {TI}) is not the a6000 of the label"),
        ("h100-pcie", answer("jax", H100), f"the device it trains on (gpu: {H100}) is not the h100-pcie of the label"),
        ("mps", answer("torch", "mps"), None),  # Apple's GPU under its own label
        ("mps", answer("torch", "cpu"), "the device it trains on (cpu: cpu) is not the MPS of the label mps"),
        ("my-box", answer("jax", "cpu"), None),  # a free name says nothing a device could contradict
    ],
)
def test_a_worker_holds_its_device_against_the_sweeps_label(label, trained_on, wrong):
    assert gate.contradiction(label, trained_on) == wrong


def test_train_and_resume_pass_the_sweeps_check(machine):
    from bench import finetune

    machine({}, {})
    spec = one_point({"backend": "tensorflow", "backbone": "tiny", "window": "epochs"})
    with pytest.raises(
        SpecError,
        match=r"^NVML sees 1 x .* but tensorflow 1.0 would train on the CPU .* or --gpu cpu "
        r"\(or CUDA_VISIBLE_DEVICES=-1\) measures the CPU on purpose$",
    ):
        finetune.check_device(spec)
    machine({}, {"tensorflow": TI})
    assert finetune.check_device(spec) == "2080ti" and os.environ[gate.LABEL_ENV] == "2080ti"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_hosts_on_one_machine_each_get_gpus_of_their_own(machine):
    from bench.run.processes import own_gpus

    machine({"FAKE_NVML_GPUS": ",".join([H100] * 4)}, {})
    assert own_gpus(2, 2, {}) == [{"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    assert own_gpus(2, 1, {"CUDA_VISIBLE_DEVICES": "3,1"}) == [
        {"CUDA_VISIBLE_DEVICES": "3"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]
    assert own_gpus(2, 1, {"CUDA_VISIBLE_DEVICES": "-1"}) == [{}, {}]  # --gpu cpu: the GPUs hidden
    machine({"FAKE_NVML_GPUS": ""}, {})
    assert own_gpus(2, 1, {}) == [{}, {}]  # CPU devices: nothing to share out


def test_a_query_a_card_lacks_leaves_that_figure_empty_and_a_mig_slice_says_so(machine):
    from bench.results import nvml

    machine(
        {
            "FAKE_NVML_FAIL": "nvmlDeviceGetEnforcedPowerLimit",
            "FAKE_NVML_GPUS": f"{H100},{TI}",
            "FAKE_NVML_MIG": "1g.10gb",
        },
        {},
    )
    gpus, driver, note = nvml.nvml_gpus()
    assert [(g["name"], g["power_limit_w"], g["mig"]) for g in gpus] == [
        (f"{H100} MIG 1g.10gb", None, True),
        (TI, None, False),
    ]
    text = doctor.render({"nvml": doctor.nvml(), "backends": {}})
    assert "a MIG slice: NVML reports no utilisation for it, and it has no datasheet peak" in text


def test_auto_refuses_a_cuda_visible_devices_entry_nvml_does_not_see(machine):
    machine({"FAKE_NVML_MIG": "1g.10gb", "CUDA_VISIBLE_DEVICES": "MIG-not-here"}, {})
    with pytest.raises(SpecError, match=r"^--gpu auto: CUDA_VISIBLE_DEVICES names MIG-not-here, which is none of"):
        gate.auto_label(doctor.nvml())
    machine({"CUDA_VISIBLE_DEVICES": "MIG-fake-0-0"}, {})
    assert gate.auto_label(doctor.nvml()) == "2080ti-mig-1g.10gb"
    machine({"CUDA_VISIBLE_DEVICES": "-1"}, {})  # hidden on purpose
    assert gate.auto_label(doctor.nvml()) == "cpu"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize(
    "variables, said",
    [
        ({}, "--gpu h100-pcie --out results/h100-pcie/ci"),
        ({"FAKE_NVML_FAIL": "nvmlInit"}, "*** --gpu auto: NVML unavailable: "),
        (
            {"FAKE_NVML_MIG": "1g.10gb", "CUDA_VISIBLE_DEVICES": "MIG-gone"},
            "*** --gpu auto: CUDA_VISIBLE_DEVICES names MIG-gone",
        ),
    ],
)
def test_make_regress_files_under_nvmls_label_or_stops_in_one_line(tmp_path, variables, said):
    """make's own evaluation of REGRESS_LABEL (-n: nothing runs), on the stand-in machine."""
    root = Path(__file__).parent.parent
    (tmp_path / "stamp").touch()
    env = {
        **os.environ,
        **variables,
        "FAKE_NVML_GPUS": "NVIDIA H100 PCIe",
        "PATH": os.pathsep.join([str(FAKE), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join([str(FAKE), str(root)]),
    }
    out = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "regress",
            f"STAMP={tmp_path / 'stamp'}",
            "EXTRAS=x",
            f"BIN={Path(sys.executable).parent}",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert said in lines[0] and (out.returncode == 0) == ("***" not in said)
    assert "--gpu cpu " not in out.stdout


def test_other_processes_on_the_gpu_and_cuda_mps_are_said(machine):
    from bench.output import header
    from bench.results import nvml

    machine({}, {})
    assert [(g["others"], g["mps"]) for g in nvml.nvml_gpus()[0]] == [([], False)]
    assert not header.others_on_gpu(nvml.nvml_gpus()[0])
    machine({"FAKE_NVML_PROCESSES": "4242,77"}, {})
    assert header.others_on_gpu(nvml.nvml_gpus()[0]) == [
        "- Other processes on the GPU as the sweep began: 2 [77, 4242]: GPU utilisation, power and memory count "
        "theirs too"
    ]
    machine({"FAKE_NVML_MPS": "1"}, {})
    assert "began (CUDA MPS): 2 [77, 4242]" in header.others_on_gpu(nvml.nvml_gpus()[0])[0]
    machine({"FAKE_NVML_FAIL": "nvmlDeviceGetComputeRunningProcesses", "FAKE_NVML_MPS": ""}, {})
    assert nvml.nvml_gpus()[0][0]["others"] is None  # NVML cannot say: not "none"


def test_a_cpu_run_hides_apples_gpu_from_torch_as_it_hides_nvidias(monkeypatch):
    from bench.run.backends import torch as torch_backend

    monkeypatch.setenv("KERAS_TORCH_DEVICE", "")  # put back after the test, whatever prepare sets
    monkeypatch.delenv("KERAS_TORCH_DEVICE")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    torch_backend.prepare(1, 1)
    assert "KERAS_TORCH_DEVICE" not in os.environ  # a GPU run: Keras picks cuda (or mps)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # --gpu cpu (doctor.check)
    torch_backend.prepare(1, 1)
    assert os.environ["KERAS_TORCH_DEVICE"] == "cpu"


def test_a_memory_limit_caps_the_gpus_memory_on_a_gpu_and_the_address_space_on_the_cpu(machine):
    from bench.run import backends
    from bench.run.processes import memory_limit

    machine({}, {})  # one 11 GB stand-in GPU
    capped, env = memory_limit(2816, dict(os.environ), 1)
    assert capped is None  # no address-space cap: it breaks CUDA's start-up
    assert (env[backends.GPU_MEMORY_ENV], env[backends.GPU_MEMORY_FRACTION_ENV]) == ("2816", "0.2500")
    capped, env = memory_limit(2816, dict(os.environ, CUDA_VISIBLE_DEVICES="-1"), 1)  # --gpu cpu
    assert callable(capped) and backends.GPU_MEMORY_ENV not in env
    assert memory_limit(None, {"A": "1"}, 1) == (None, {"A": "1"})


def test_jax_takes_the_cap_as_its_allocators_fraction(monkeypatch):
    from bench.run import backends
    from bench.run.backends import jax as jax_backend

    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "")
    monkeypatch.setenv(backends.GPU_MEMORY_FRACTION_ENV, "0.2500")
    jax_backend.prepare(1, 1)
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.2500"


def slurm_node(monkeypatch, variables: dict):
    """submitit's executor as seen from a login node: a job runs on a node whose stand-in NVML
    `variables` describe, and the login node's come back after it."""

    def submit(fn, *args):
        def result():
            before = {name: os.environ.get(name) for name in variables}
            for name, value in variables.items():
                monkeypatch.setenv(name, value)
            try:
                return fn(*args)
            finally:
                for name, value in before.items():
                    monkeypatch.setenv(name, value) if value is not None else monkeypatch.delenv(name)

        return SimpleNamespace(job_id="7", result=result)

    return SimpleNamespace(executor=SimpleNamespace(submit=submit))


def test_under_slurm_the_label_is_decided_on_the_node_that_trains(machine, monkeypatch):
    from bench.run import executors

    machine({"FAKE_NVML_GPUS": ""}, {})  # the login node: no GPU
    grid = [one_point({"backend": "jax", "backbone": "tiny"})]
    node = slurm_node(monkeypatch, {"FAKE_NVML_GPUS": H100})
    label, facts, _ = session.checked_label("auto", grid, False, lambda gpus: executors.node_label(node, gpus))
    assert label == "h100" and facts["gpu_used"] is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the login node's cpu never hides the jobs' GPUs
    broken = slurm_node(monkeypatch, {"FAKE_NVML_GPUS": H100, "FAKE_NVML_FAIL": "nvmlInit"})
    with pytest.raises(SpecError, match=r"^--gpu auto on a Slurm node \(job 7\): --gpu auto: NVML unavailable"):
        session.checked_label("auto", grid, False, lambda gpus: executors.node_label(broken, gpus))
    assert session.checked_label("auto", grid, False)[0] == "auto"  # a dry run submits nothing

    def failed():  # submitit's FailedJobError carries the job's traceback
        raise RuntimeError("Traceback (most recent call last):\n  ...\nbench.plan.knobs.SpecError: no")

    traced = SimpleNamespace(job_id="8", result=failed)
    with pytest.raises(SpecError, match=r"^--gpu auto on a Slurm node \(job 8\): no$"):
        executors.node_label(SimpleNamespace(executor=SimpleNamespace(submit=lambda fn, *a: traced)), 1)
