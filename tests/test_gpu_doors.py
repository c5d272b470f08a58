"""Every door of a GPU machine, on the stand-in one (tests/fake_nvml: NVML and nvidia-smi as the
environment describes them): each case goes through the command's own checks and ends measured,
refused with its line, or labelled as what. The backends' answers are stood in for (this machine's
frameworks are CPU builds); the slow tests of test_doctor.py ask the real ones."""

import importlib.util
import os
import sys
from pathlib import Path

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
