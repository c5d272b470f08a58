import pytest

from bench.env import gpu_label


@pytest.mark.parametrize("name, label", [
    ("NVIDIA GeForce RTX 2080 Ti", "2080ti"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA GeForce GTX 1060 6GB", "gtx1060"),
    ("Tesla V100-SXM2-16GB", "v100"),
    ("NVIDIA A100-SXM4-80GB", "a100"),
    ("NVIDIA GeForce RTX 4090", "4090"),
])
def test_gpu_labels_are_short_names_from_the_nvml_name(name, label):
    assert gpu_label(name) == label
