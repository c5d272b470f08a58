import pytest

from bench.plan.knobs import BACKENDS, LATER_KNOBS, parse_override
from bench.plan.presets import load_preset, parse_size
from bench.plan.grid import check_label, check_spec, expand, installed, missing
from bench.plan.knobs import RunSpec, SpecError


def test_expand_is_the_cartesian_product_with_repeats():
    grid = expand({"batch": [8, 16], "workers": [1, 4], "pipeline": ["keras"]}, repeat=2)
    assert len(grid) == 8
    assert {(s.batch, s.workers, s.repeat) for s in grid} == {
        (b, w, r) for b in (8, 16) for w in (1, 4) for r in (0, 1)}


def test_knobs_a_pipeline_does_not_use_are_blanked_and_collapse():
    grid = expand({"pipeline": ["tfdata", "synthetic"], "use_multiprocessing": [False, True],
                        "workers": [1, 4]})
    tfdata = [s for s in grid if s.pipeline == "tfdata"]
    synthetic = [s for s in grid if s.pipeline == "synthetic"]
    assert len(tfdata) == 2 and {s.use_multiprocessing for s in tfdata} == {None}
    assert len(synthetic) == 1 and synthetic[0].workers is None and synthetic[0].max_queue_size is None


def test_point_id_is_stable_and_ignores_the_repeat():
    a, b = RunSpec(batch=8), RunSpec(batch=8, repeat=3)
    assert a.point_id == b.point_id and a.run_id != b.run_id
    assert RunSpec(batch=9).point_id != a.point_id


def test_knobs_added_later_keep_the_ids_of_results_from_before_them():
    import hashlib
    import json

    later = ("backend", "window", "data_format", "transfer", "hosts")
    assert set(LATER_KNOBS) == set(later)
    knobs = {k: v for k, v in RunSpec(batch=8).knobs().items() if k not in later}  # a point as recorded then
    before = hashlib.sha1(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:10]
    assert RunSpec(batch=8).point_id == before
    ids = {RunSpec(batch=8, backend=b).point_id for b in BACKENDS}
    assert len(ids) == 3
    assert RunSpec(batch=8, window="epochs").point_id != before != RunSpec(batch=8, data_format="channels_first").point_id


@pytest.mark.parametrize("text, message", [
    ("bogus=1", "unknown knob 'bogus'"),
    ("batch=eight", "expected a whole number"),
    ("use_multiprocessing=maybe", "expected true or false"),
    ("batch", "expected KNOB=VALUE"),
])
def test_bad_overrides_say_what_is_wrong(text, message):
    with pytest.raises(SpecError, match=message):
        parse_override(text)


def test_override_values_take_the_knob_type():
    assert parse_override("use_multiprocessing=true,false") == ("use_multiprocessing", [True, False])
    assert parse_override("batch=6,10") == ("batch", [6, 10])


@pytest.mark.parametrize("changes, message", [
    ({"backbone": "alexnet"}, "unknown backbone"),
    ({"pipeline": "ffcv"}, "unknown pipeline"),
    ({"batch": 0}, "batch=0"),
    ({"workers": -1}, "workers=-1"),
    ({"gpus": 0}, "gpus=0: must be at least 1"),
    ({"finetune": "some"}, "finetune"),
])
def test_impossible_points_are_refused(changes, message):
    with pytest.raises(SpecError, match=message):
        check_spec(RunSpec(**changes))


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
        (p, "uint8", c) for p in ("keras", "torch") for c in (False, True)}
    # 12 loader settings, keras's processes and 4 of uint8 with and without the cache, per backbone and backend
    assert len(loaders) == 4 * 3 * (12 + 1 + 4)
    assert gpu.installed_only and gpu.data.train >= 5000


def test_installed_reads_the_machine_without_importing():
    assert installed("json") and not installed("no_such_package_here")
    assert missing(RunSpec(backend="jax", pipeline="keras")) == (
        None if installed("jax") else "backend jax needs jax, which is not installed here (pip install 'gpubench[jax]')")


def test_preset_errors(tmp_path):
    with pytest.raises(SpecError, match="no preset 'nope'"):
        load_preset("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('[knobs]\nbatchsize = 3\n')
    with pytest.raises(SpecError, match="unknown knob 'batchsize'"):
        load_preset(str(bad))
    bad.write_text('[[grid]]\npipeline = "keras"\nbatchsize = 3\n')
    with pytest.raises(SpecError, match="unknown knob 'batchsize'"):
        load_preset(str(bad))


@pytest.mark.parametrize("label", ["2080ti", "h200", "my-rig_1.a"])
def test_plain_labels_pass(label):
    assert check_label(label) == label


@pytest.mark.parametrize("label", ["../x", "a/b", "", "two words"])
def test_labels_that_are_not_plain_names_are_refused(label):
    with pytest.raises(SpecError, match="plain name"):
        check_label(label)


def test_image_size_parsing():
    assert parse_size("640x480") == (640, 480)
    with pytest.raises(SpecError):
        parse_size("640")


def test_ceilings_are_repeated_like_the_points_they_bound_and_measured_once_per_setting():
    from bench.plan.grid import ceiling_probes, expand, model_ceiling, pipeline_ceiling

    grid = expand({"backbone": ["tiny"], "pipeline": ["keras"], "batch": [8], "workers": [1, 2]}, repeat=3)
    probes = ceiling_probes(grid)
    ids = {p.point_id for p in probes}
    expected = {f(g).point_id for g in grid for f in (pipeline_ceiling, model_ceiling)}
    assert ids == expected and len(ids) == 3  # two pipeline settings, one model: each once
    assert sorted(p.run_id for p in probes) == sorted(f"{i}-r{r}" for i in ids for r in range(3))
