import pytest

from bench.results.machine import gpu_label


@pytest.mark.parametrize(
    "name, label",
    [
        ("NVIDIA GeForce RTX 2080 Ti", "2080ti"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA GeForce GTX 1060 6GB", "gtx1060"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA GeForce RTX 4090", "4090"),
    ],
)
def test_gpu_labels_are_short_names_from_the_nvml_name(name, label):
    assert gpu_label(name) == label


class Dist:
    def __init__(self, name, version):
        self.metadata, self.version = {"Name": name}, version


def installed(monkeypatch, packages: dict) -> None:
    """importlib.metadata as it reads on a machine with these packages (and the real ones' versions)."""
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [Dist(n, v) for n, v in packages.items()])
    monkeypatch.setattr(importlib.metadata, "version", lambda name: packages[name] if name in packages else real(name))


def test_a_reinstall_with_gpu_builds_changes_the_fingerprint(monkeypatch):
    from bench.results import machine

    installed(monkeypatch, {"jax-cuda12-plugin": "0.10.2", "nvidia-cudnn-cu12": "9.10.0", "nvidia-ml-py": "13.0"})
    gpu12 = machine.collect()
    assert gpu12["accelerators"] == {"jax-cuda12-plugin": "0.10.2", "nvidia-cudnn-cu12": "9.10.0"}  # not NVML's
    assert gpu12["cudnn"] == "9.10.0"
    installed(monkeypatch, {"jax-cuda12-plugin": "0.10.2", "nvidia-cudnn-cu12": "9.11.0"})
    assert machine.fingerprint_id(machine.collect()) != machine.fingerprint_id(gpu12)
    installed(monkeypatch, {"jax-cuda13-plugin": "0.10.2", "nvidia-cudnn-cu12": "9.10.0"})
    assert machine.fingerprint_id(machine.collect()) != machine.fingerprint_id(gpu12)
    installed(monkeypatch, {"jax-cuda12-plugin": "0.10.2", "nvidia-cudnn-cu12": "9.10.0"})
    assert machine.fingerprint_id(machine.collect()) == machine.fingerprint_id(gpu12)


def test_a_machine_without_accelerator_packages_keeps_the_identity_it_had():
    from bench.results import machine

    before = {
        "cpu": "Test CPU",
        "cpu_threads": 2,
        "gpus": [],
        "driver": "",
        "tensorflow": "2.21.0",
        "keras": "3.15",
        "jax": "",
        "jaxlib": "",
        "torch": "2.13.0+cpu",
    }  # an env.json of before the accelerator columns
    assert machine.fingerprint_id({**before, "cuda": "", "cudnn": "", "accelerators": {}}) == machine.fingerprint_id(
        before
    )
    assert machine.fingerprint_id(before) == "e54f84fd6b"  # its id before them (the machine column of its rows)
