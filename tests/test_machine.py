import re

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
        ("NVIDIA RTX A6000", "a6000"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtxpro6000-blackwell"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "4090-laptop"),
        ("NVIDIA H100 PCIe MIG 1g.10gb", "h100-pcie-mig-1g.10gb"),
    ],
)
def test_gpu_labels_are_short_names_from_the_nvml_name(name, label):
    assert gpu_label(name) == label


# The NVML names of the GPUs people rent and buy, and the datasheet each is held against.
SOLD = {
    "NVIDIA L4": "l4",
    "NVIDIA L40S": "l40s",
    "NVIDIA A10G": "a10g",
    "Tesla T4": "t4",
    "NVIDIA GeForce RTX 3090": "3090",
    "NVIDIA GeForce RTX 4090": "4090",
    "NVIDIA GeForce RTX 5090": "5090",
    "NVIDIA RTX 6000 Ada Generation": "rtx6000-ada",
    "Quadro RTX 6000": "quadro-rtx6000",
    "NVIDIA A100-SXM4-40GB": "a100-40gb",
    "NVIDIA A100-SXM4-80GB": "a100",
    "NVIDIA A100-PCIE-40GB": "a100-pcie-40gb",
    "NVIDIA A100 80GB PCIe": "a100-pcie",
    "NVIDIA H100 80GB HBM3": "h100",
    "NVIDIA H100 PCIe": "h100-pcie",
    "NVIDIA H100 NVL": "h100-nvl",
    "NVIDIA H200": "h200",
    "NVIDIA H200 NVL": "h200-nvl",
    "NVIDIA GH200 480GB": "gh200",
    "NVIDIA B200": "b200",
}


@pytest.mark.parametrize("name, label", SOLD.items())
def test_every_gpu_sold_today_has_its_own_label_and_datasheet(name, label):
    from bench.results import profiles

    assert gpu_label(name) == label
    sheet = profiles.load(label)
    peaks = sheet["peak_tflops"]
    assert peaks["float32"] > 0 and peaks["float16"] >= peaks["float32"]
    assert sheet["board_power_w"] > 0 and sheet["memory_gb"] > 0 and sheet["source"]
    assert (sheet.get("price_usd") or sheet.get("price_per_hour_usd")) and "indicative" in sheet["price_note"]
    assert re.search(r"\b(19|20)\d\d\b", sheet["price_note"])  # the price's date
    assert profiles.missing(label) == []


def test_variants_of_one_model_are_held_against_their_own_sheets():
    from bench.results import profiles

    bf16 = {label: profiles.load(label)["peak_tflops"].get("bfloat16") for label in ("h100", "h100-pcie", "h100-nvl")}
    assert len(set(bf16.values())) == 3  # 989 SXM, 756 PCIe, 835 NVL: none held against another's
    assert len(set(SOLD.values())) == len(SOLD)
    assert profiles.missing("a6000_h100") == ["a6000"] and profiles.missing("h100-mig-1g.10gb") == []


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
