"""The tuner's walk (bench/analyse/moves.py) on a stand-in whose rates are a known function of the
knobs, judged by the real noise rule (bench/tune.py `better`): it finds the optimum, stops on a
plateau, and never keeps a change inside the noise. One short real `tune` is in the slow tests."""

import json

import numpy as np
import pytest

from bench.analyse import moves
from bench.analyse.bounds import bound
from bench.analyse.noise import Noise, faster
from tests import walk_sim
from tests.conftest import in_process
from tests.walk_sim import START


class StandIn:
    """Measures a setting as rates drawn around a known truth: the pipeline alone feeds
    `per_worker` images/s a worker thread up to `cores` (processes 1.5x), the model alone
    `model` images/s at batch 16 and more at larger batches; end to end is the lower, less 5%."""

    def __init__(
        self,
        noise: float = 0.03,
        per_worker: float = 100.0,
        cores: int = 8,
        model: float = 1000.0,
        repeat: int = 1,
        seed: int = 0,
    ):
        self.noise, self.per_worker, self.cores, self.model, self.repeat = noise, per_worker, cores, model, repeat
        self.rng, self.runs = np.random.default_rng(seed), 0

    def truth(self, knobs: dict) -> tuple[float, float, float]:
        if knobs.get("pipeline") == "tfdata":
            pipeline = self.per_worker * 1.2 * min(knobs["workers"], self.cores)
        else:
            pipeline = (
                self.per_worker * min(knobs["workers"], self.cores) * (1.5 if knobs["use_multiprocessing"] else 1)
            )
        model = self.model * (min(knobs["batch"], 64) / 16) ** 0.5
        return min(pipeline, model) * 0.95, pipeline, model

    def __call__(self, knobs: dict, why: str, repeat: int | None = None) -> moves.Step:
        self.runs += 1
        train, pipeline, model = self.truth(knobs)
        rates = list(train * np.exp(self.rng.normal(0, self.noise, repeat or self.repeat)))
        limit = bound({"train_img_s": float(np.median(rates)), "pipeline_img_s": pipeline, "model_img_s": model})[0]
        return moves.Step(knobs, rates, pipeline, model, limit, why)

    def more(self, step: moves.Step) -> moves.Step:
        return step._replace(rates=step.rates + self(step.knobs, step.why, 1).rates)


def walk(stand_in, start=START, **kwargs):
    """The walk as `gpubench tune` drives it: your setting twice, each change once; the noise rule
    with the noise pooled over a tune folder's settings (about 20 degrees of freedom), a second look
    where a change is inside it."""
    pooled = Noise(stand_in.noise, 20)
    return moves.walk(
        stand_in(start, "your setting", 2),
        stand_in,
        lambda new, old: faster(new, old, pooled),
        {"tfdata"},
        say=lambda line: None,
        more=stand_in.more,
        **kwargs,
    )


def test_the_walk_follows_the_bound_to_within_5_percent_of_the_best_setting():
    stand_in = StandIn()
    path, best, reason = walk(stand_in, max_runs=30)
    best_truth = stand_in.truth(best.knobs)[0]
    grid_best = max(
        stand_in.truth({**START, "workers": w, "use_multiprocessing": mp, "pipeline": p})[0]
        for w in (1, 2, 4, 8, 16, 32)
        for mp in (False, True)
        for p in ("keras", "tfdata")
    )
    assert best_truth >= 0.95 * grid_best, (best.knobs, best_truth, grid_best)
    assert len(path) <= 12 and reason, [s.why for s in path]


def test_only_a_kept_change_has_its_ceilings_measured_and_the_walk_still_finds_the_best():
    """`gpubench tune` measures a change end to end only; the walk asks for the ceilings of the
    changes it keeps, whose bounds plan the next moves."""
    stand_in, bounded = StandIn(), []

    def bare(knobs: dict, why: str) -> moves.Step:
        return stand_in(knobs, why)._replace(pipeline=None, model=None, bound=None)

    def with_ceilings(step: moves.Step) -> moves.Step:
        bounded.append(step.knobs)
        return stand_in(step.knobs, step.why)._replace(rates=step.rates)

    pooled = Noise(stand_in.noise, 20)
    path, best, _ = moves.walk(
        stand_in(START, "your setting", 2),
        bare,
        lambda new, old: faster(new, old, pooled),
        {"tfdata"},
        say=lambda line: None,
        more=stand_in.more,
        bounded=with_ceilings,
        max_runs=30,
    )
    assert bounded and bounded == [s.knobs for s in path[1:] if s.bound is not None]
    assert all(s.pipeline is None for s in path[1:] if s.knobs not in bounded)
    assert stand_in.truth(best.knobs)[0] >= 0.95 * stand_in.truth(walk(StandIn(), max_runs=30)[1].knobs)[0]


def test_a_plateau_stops_the_walk_with_the_starting_setting_kept():
    """Workers beyond one core do nothing here, and the model is far away: every move is tried once
    and none is kept."""
    stand_in = StandIn(cores=1, per_worker=50.0)
    stand_in.truth = lambda knobs: (47.5, 50.0, 1000.0)
    path, best, reason = walk(stand_in, max_runs=30)
    assert best.knobs == START and reason.startswith("no change")
    assert len(path) == 1 + len(moves.moves(path[0], {"tfdata"}))


@pytest.mark.slow  # the tuner's whole walk simulated many times over, as test_noise simulates whole sweeps
def test_a_whole_walk_on_a_plateau_rarely_ends_away_from_the_start_and_keeps_a_change_worth_30_percent():
    """Whole walks (tests/walk_sim.py: up to 12 settings, 8% noise, the noise pooled over the folder
    as `gpubench tune` pools it, 2 to 3 degrees of freedom at the start): on a plateau a walk ends
    at a setting not truly better than the start in 5% of walks or fewer; a change worth 30% is kept
    in 95% or more."""
    found = walk_sim.rates(walks=200)
    assert found["plateau: ended not better than the start"] <= 0.05, found
    assert found["+30% kept"] >= 0.95, found


def test_the_moves_follow_the_bound():
    step = moves.Step(START, [100.0], 120.0, 1000.0, "input")
    assert [list(c) for _, c in moves.moves(step, {"tfdata"})][:2] == [["workers"], ["use_multiprocessing"]]
    compute = moves.Step(START, [100.0], 1000.0, 110.0, "compute")
    assert [c for _, c in moves.moves(compute, set(), gpu=True)] == [
        {"batch": 32},
        {"precision": "mixed_float16"},
        {"xla": "on"},
    ]
    saved = moves.Step({**START, "backbone": "my.keras"}, [100.0], 1000.0, 110.0, "compute")
    assert all("precision" not in c for _, c in moves.moves(saved, set()))  # a saved model keeps its policy


def test_a_setting_takes_the_bound_its_points_csv_names(tmp_path):
    """A bound points.csv states without a doubt (a blank cell there) is the step's bound."""
    import dataclasses
    import json

    from bench.output import report
    from bench.plan.grid import model_ceiling, pipeline_ceiling
    from bench.plan.knobs import RunSpec
    from bench.results.record import RunRecord
    from bench.results.store import ResultStore
    from bench.tune import step_of

    spec = RunSpec(backbone="tiny", input_size=16, batch=8, workers=1)
    store = ResultStore(tmp_path).create()
    for run, rates in ((spec, [95, 97]), (pipeline_ceiling(spec), [100, 101]), (model_ceiling(spec), [900, 905])):
        for repeat, rate in enumerate(rates):
            store.append(
                RunRecord.for_spec(
                    dataclasses.replace(run, repeat=repeat), status="ok", train_img_s=float(rate), total_s=1.0
                ).to_dict()
            )
    (tmp_path / "env.json").write_text(json.dumps({"cpu_threads": 2, "gpus": []}))
    (tmp_path / "sweep.json").write_text(json.dumps({"gpu": "cpu", "preset": "tune"}))
    report.write(tmp_path)
    step = step_of(tmp_path, spec, "your setting")
    assert step.rates == [95.0, 97.0] and step.bound == "input" and (step.pipeline, step.model) == (100.5, 902.5)


@pytest.mark.slow
@pytest.mark.xdist_group("tensorflow_sweeps")  # its runs fork from test_bottleneck's TensorFlow launcher
def test_a_short_real_tune_walks_and_ends_with_code(tmp_path, tiny_tree, no_figures):
    done = in_process(
        "tune",
        "--preset",
        "smoke",
        "--data",
        tiny_tree,
        "--out",
        tmp_path / "t",
        "--max-runs",
        "1",
        "--repeat",
        "1",
        "--set",
        "pipeline=keras",
        "--set",
        "batch=4",
        "--set",
        "workers=1",
        "--set",
        "epochs=2",
        "--set",
        "steps_per_epoch=3",
        "--set",
        "window=epochs",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[1] ") and "your setting" in lines[0]
    assert any(line.startswith("stopped after ") for line in lines) and "```python" in lines
    path = (tmp_path / "t" / "tune.csv").read_text().splitlines()
    assert len(path) - 1 == sum(line.startswith("[") and not line.startswith("[-]") for line in lines) == 1
    assert json.loads((tmp_path / "t" / "sweep.json").read_text())["preset"] == "tune"


def test_a_pipeline_that_makes_its_own_batches_is_never_offered_a_larger_batch_and_lines_read_the_judgement():
    """Its batch is blank (the knob does not apply): a compute-bound step tries precision and XLA only.
    A step's line is the report's words for its bound (load and doubt included), not a bound of its own."""
    from bench import tune

    knobs = {**START, "pipeline": "tests.user_pipelines:own_size_images", "batch": None, "workers": None}
    step = moves.Step(knobs, [100.0], 120.0, 105.0, "compute")
    assert not [m for m in moves.moves(step, set()) if "batch" in m[1]]
    says = "bound withheld: measured under load: other work took 60% of the CPU during the point (over 30%)"
    assert tune._rate(step._replace(says=says)) == f"100 images/s, {says}"


def test_a_loader_that_decodes_in_python_is_offered_each_installed_pipeline_the_registry_says_to_try(monkeypatch):
    """The tuner's loader moves come from the pipelines' descriptors, not from names in the tuner."""
    import dataclasses

    from bench.plan import grid
    from pipelines.registry import PIPELINES

    faster = dataclasses.replace(PIPELINES["synthetic"], name="fastload", kind="fastload", instead="it decodes in C")
    monkeypatch.setitem(PIPELINES, "fastload", faster)
    step = moves.Step({**START, "pipeline": "keras"}, [100.0], 120.0, 900.0, "input")
    offered = {
        change["pipeline"]: why for why, change in moves.moves(step, {"tfdata", "fastload"}) if "pipeline" in change
    }
    assert offered == {
        "tfdata": "tf.data in place of this loader: its map runs outside Python's lock",
        "fastload": "fastload in place of this loader: it decodes in C",
    }
    assert not [
        c for _, c in moves.moves(step._replace(knobs={**START, "pipeline": "tfdata"}), {"tfdata"}) if "pipeline" in c
    ]
    monkeypatch.setattr(grid, "installed", lambda module: module != "tensorflow")
    assert "tfdata" not in grid.installed_pipelines() and "keras" in grid.installed_pipelines()
