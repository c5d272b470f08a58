"""The grid (bench/plan/grid.py): the product, the checks before any run, the ceiling probes."""

import pytest

from bench.plan.grid import ceiling_probes, check_label, check_spec, expand, installed, missing, run_counts, said_runs
from bench.plan.knobs import RunSpec, SpecError


def test_expand_is_the_cartesian_product_with_repeats():
    grid = expand({"batch": [8, 16], "workers": [1, 4], "pipeline": ["keras"]}, repeat=2)
    assert len(grid) == 8
    assert {(s.batch, s.workers, s.repeat) for s in grid} == {
        (b, w, r) for b in (8, 16) for w in (1, 4) for r in (0, 1)
    }


def test_knobs_a_pipeline_does_not_use_are_blanked_and_collapse():
    grid = expand({"pipeline": ["tfdata", "synthetic"], "use_multiprocessing": [False, True], "workers": [1, 4]})
    tfdata = [s for s in grid if s.pipeline == "tfdata"]
    synthetic = [s for s in grid if s.pipeline == "synthetic"]
    assert len(tfdata) == 2 and {s.use_multiprocessing for s in tfdata} == {None}
    assert len(synthetic) == 1 and synthetic[0].workers is None and synthetic[0].max_queue_size is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"backbone": "alexnet"}, "unknown backbone"),
        ({"pipeline": "ffcv"}, "unknown pipeline"),
        ({"batch": 0}, "batch=0"),
        ({"workers": -1}, "workers=-1"),
        ({"gpus": 0}, "gpus=0: must be at least 1"),
        ({"finetune": "some"}, "finetune"),
    ],
)
def test_impossible_points_are_refused(changes, message):
    with pytest.raises(SpecError, match=message):
        check_spec(RunSpec(**changes))


def test_installed_reads_the_machine_without_importing():
    assert installed("json") and not installed("no_such_package_here")
    assert missing(RunSpec(backend="jax", pipeline="keras")) == (
        None if installed("jax") else "backend jax needs jax, which is not installed here (pip install 'gpubench[jax]')"
    )


@pytest.mark.parametrize("label", ["2080ti", "h200", "my-rig_1.a"])
def test_plain_labels_pass(label):
    assert check_label(label) == label


@pytest.mark.parametrize("label", ["../x", "a/b", "", "two words"])
def test_labels_that_are_not_plain_names_are_refused(label):
    with pytest.raises(SpecError, match="plain name"):
        check_label(label)


def test_ceilings_are_repeated_like_the_points_they_bound_and_measured_once_per_setting():
    from bench.plan.grid import ceiling_probes, expand, model_ceiling, pipeline_ceiling

    grid = expand({"backbone": ["tiny"], "pipeline": ["keras"], "batch": [8], "workers": [1, 2]}, repeat=3)
    probes = ceiling_probes(grid)
    ids = {p.point_id for p in probes}
    expected = {f(g).point_id for g in grid for f in (pipeline_ceiling, model_ceiling)}
    assert ids == expected and len(ids) == 3  # two pipeline settings, one model: each once
    assert sorted(p.run_id for p in probes) == sorted(f"{i}-r{r}" for i in ids for r in range(3))


def test_a_ceiling_is_known_by_the_role_its_descriptor_states():
    from bench.plan.grid import is_ceiling, model_ceiling, pipeline_ceiling
    from models import is_pipeline_alone
    from pipelines.registry import is_model_alone

    assert is_model_alone("synthetic") and is_pipeline_alone("null")
    assert not any(is_model_alone(p) for p in ("keras", "tfdata", "examples.pipelines:folders", float("nan")))
    assert not any(is_pipeline_alone(b) for b in ("tiny", "resnet50", "examples.models:small", None))
    point = RunSpec(backbone="tiny", pipeline="keras")
    assert not is_ceiling(point)
    assert is_ceiling(pipeline_ceiling(point)) and is_ceiling(model_ceiling(point))
    assert is_pipeline_alone(pipeline_ceiling(point).backbone) and is_model_alone(model_ceiling(point).pipeline)


def test_the_planner_counts_the_first_pass_and_the_most_a_sweep_may_run():
    grid = expand({"batch": [4, 8]}, repeat=2)  # 2 points, 2 repeats each
    probes = ceiling_probes(grid)  # each point's pipeline and model ceilings, twice each
    first_pass = len([s for s in grid + probes if s.repeat == 0])
    distinct = len({s.point_id for s in grid + probes})
    assert run_counts(grid, probes, as_needed=True) == (first_pass, len(grid + probes) + distinct)
    assert run_counts(grid, probes, as_needed=False) == (first_pass + 2, len(grid + probes) + distinct)
    assert run_counts(grid, probes, as_needed=True, looks=False) == (first_pass, len(grid + probes))
    once = expand({"batch": [4, 8]})
    assert run_counts(once, ceiling_probes(once), as_needed=False) == (2 + len(ceiling_probes(once)),) * 2
    assert said_runs((26, 78)) == "26 to 78 runs" and said_runs((18, 18)) == "18 runs"
