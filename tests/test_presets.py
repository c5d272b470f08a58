"""The presets (bench/plan/presets.py): loading, their promises, their errors."""

import pytest

from bench.plan.grid import expand
from bench.plan.knobs import BACKENDS, SpecError
from bench.plan.presets import load_preset, parse_size


def test_presets_load_and_cover_what_they_promise():
    quick = load_preset("quick")
    grid = expand(quick.knobs, quick.repeat)
    assert {s.pipeline for s in grid} >= {"keras", "tfdata"}
    assert len({s.batch for s in grid}) >= 2 and len({s.workers for s in grid}) >= 2
    assert {s.use_multiprocessing for s in grid if s.pipeline == "keras"} == {False, True}
    smoke = load_preset("smoke")
    assert smoke.knobs["backbone"] == ["tiny"] and smoke.installed_only


def test_the_gpu_preset_is_a_union_of_grids(monkeypatch):
    gpu = load_preset("gpu")
    grid = {s.run_id: s for knobs in gpu.knob_sets() for s in expand(knobs)}.values()
    models = [s for s in grid if s.pipeline == "synthetic"]
    loaders = [s for s in grid if s.pipeline != "synthetic"]
    assert {s.backbone for s in grid} == {"vgg16", "resnet50", "mobilenetv2", "efficientnetb0"}
    assert {s.input_size for s in grid} == {224} and {s.backend for s in grid} == set(BACKENDS)
    assert sorted({s.batch for s in models}) == [32, 64, 128, 256, 512]
    assert {s.precision for s in models} == {"float32", "mixed_bfloat16"}
    assert len(models) == 4 * 5 * 2 * 3
    loaders_ = ("keras", "tfdata", "torch", "dali")
    assert {(s.pipeline, s.workers) for s in loaders} >= {(p, w) for p in loaders_ for w in (1, 8, 16)}
    assert {(s.pipeline, s.transfer, s.cache) for s in loaders if s.transfer == "uint8"} == {
        (p, "uint8", c) for p in ("keras", "torch") for c in (False, True)
    }
    # 12 loader settings, keras's processes and 4 of uint8 with and without the cache, per backbone and backend
    assert len(loaders) == 4 * 3 * (12 + 1 + 4)
    assert gpu.installed_only and gpu.data.train >= 5000


def test_preset_errors(tmp_path):
    with pytest.raises(SpecError, match="no preset 'nope'"):
        load_preset("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[knobs]\nbatchsize = 3\n")
    with pytest.raises(SpecError, match="unknown knob 'batchsize'"):
        load_preset(str(bad))
    bad.write_text('[[grid]]\npipeline = "keras"\nbatchsize = 3\n')
    with pytest.raises(SpecError, match="unknown knob 'batchsize'"):
        load_preset(str(bad))


def test_image_size_parsing():
    assert parse_size("640x480") == (640, 480)
    with pytest.raises(SpecError):
        parse_size("640")
