"""--profile: the trace a run takes, the operations the report lists from it, which run is traced,
and that a profiled run's rates stay out of the tables."""

import json

import pandas as pd
import pytest

from bench.cli.checks import check_profile
from bench.output import report
from bench.plan.knobs import RunSpec, SpecError
from bench.run.trace_ops import self_times, top_ops
from bench.session import profiled_spec
from tests.conftest import results

MS = 1_000_000  # nanoseconds


def test_self_time_is_a_span_less_the_spans_nested_in_it():
    spans = [(0, 10 * MS, "step"), (1 * MS, 4 * MS, "conv"), (2 * MS, 1 * MS, "pad"), (6 * MS, 3 * MS, "dense")]
    assert dict(self_times(spans)) == {"step": 3 * MS, "conv": 3 * MS, "pad": 1 * MS, "dense": 3 * MS}


def test_top_ops_take_the_devices_planes_where_there_are_any_and_leave_out_waits():
    events = [
        ("/host:CPU", "python", "PjitFunction", 0, 50 * MS),
        ("/device:GPU:0", "stream 7", "conv_kernel", 0, 6 * MS),
        ("/device:GPU:0", "stream 7", "gemm", 7 * MS, 2 * MS),
        ("/device:GPU:0", "stream 8", "conv_kernel", 0, 2 * MS),
    ]
    ops, source = top_ops(events)
    assert source == "device"
    assert [(o["name"], o["ms"], o["share"]) for o in ops] == [("conv_kernel", 8.0, 0.8), ("gemm", 2.0, 0.2)]
    host = [
        ("/host:CPU", "worker", "fusion", 0, 3 * MS),
        ("/host:CPU", "python", "Await", 0, 9 * MS),
        ("/host:CPU", "python", "$pool.py:97 worker", 10 * MS, 9 * MS),
    ]  # the Python tracer's
    assert top_ops(host) == ([{"name": "fusion", "ms": 3.0, "share": 1.0}], "host")


def _rows(rates: dict[int, list[float]]) -> list[dict]:
    return [
        {"point_id": RunSpec(backbone="tiny", workers=w).point_id, "status": "ok", "train_img_s": r}
        for w, rs in rates.items()
        for r in rs
    ]


def test_profile_alone_traces_the_point_with_the_highest_median_rate_and_a_named_one_is_checked():
    specs = [RunSpec(backbone="tiny", workers=w, repeat=k) for w in (1, 2, 4) for k in (0, 1)]
    rows = _rows({1: [10.0, 11.0], 2: [30.0, 5.0, 6.0], 4: [12.0, 13.0]})  # workers=2: one fast outlier
    chosen = profiled_spec("fastest", specs, rows + [{**rows[0], "train_img_s": 99.0, "profiled": True}])
    assert (chosen.workers, chosen.repeat, chosen.profile) == (4, 0, True)
    assert chosen.run_id == f"{chosen.point_id}-r0-profile" and chosen.point_id == specs[4].point_id
    assert profiled_spec(specs[2].point_id, specs, rows).workers == 2
    assert profiled_spec("fastest", specs, []) is None
    check_profile("fastest", specs)
    with pytest.raises(SpecError, match=r"^--profile 0123456789: no such point in this sweep"):
        check_profile("0123456789", specs)


def test_a_profiled_run_is_left_out_of_the_tables_and_its_top_operations_are_listed(tmp_path):
    folder = tmp_path / "r"
    results(folder, {1: [10.0], 2: [20.0]})
    from bench.results.record import RunRecord
    from bench.results.store import ResultStore

    spec = RunSpec(backbone="tiny", input_size=16, batch=8, workers=1, profile=True)
    ResultStore(folder).append(
        RunRecord.for_spec(
            spec, status="ok", train_img_s=1.0, total_s=100.0, epochs_timed=3, train_images_per_epoch=100
        ).to_dict()
    )
    trace = folder / "profiles" / spec.run_id
    trace.mkdir(parents=True)
    ops = [{"name": "conv", "ms": 3.0, "share": 0.75}, {"name": "dot", "ms": 1.0, "share": 0.25}]
    (trace / "top_ops.json").write_text(
        json.dumps({"backend": "jax", "trace": "plugins/profile/t/h.xplane.pb", "source": "host", "ops": ops})
    )
    text = report.write(folder).read_text()
    points = pd.read_csv(folder / "points.csv")
    assert sorted(points.train_img_s) == [10.0, 20.0]  # the profiled 1.0 is no repeat of workers=1
    section = text.split("## Where one step's time goes (profiled runs)")[1]
    table = [row for row in section.splitlines() if row.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in table]
    assert cells[0] == ["operation", "ms", "share"]
    assert cells[2:] == [["`conv`", "3.00", "75%"], ["`dot`", "1.00", "25%"]]
    assert f"Run `{spec.run_id}` (jax, host time" in section


@pytest.mark.slow
def test_run_profile_on_jax_writes_a_trace_that_jax_opens_and_the_report_lists_its_operations(
    tmp_path, tiny_tree, cli, no_figures
):
    """The run forks from jax's launcher, started from this process (`gpubench run` in process)."""
    jax = pytest.importorskip("jax")
    result = cli(
        "run",
        "--profile",
        "--data",
        tiny_tree,
        "--out",
        "out",
        "--set",
        "backend=jax",
        "--set",
        "backbone=tiny",
        "--set",
        "input_size=32",
        "--set",
        "batch=2",
        "--set",
        "epochs=2",
        "--set",
        "window=epochs",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and record["profiled"] is True and record["run_id"].endswith("-r0-profile")
    folder = tmp_path / "out" / "profiles" / record["run_id"]
    found = json.loads((folder / "top_ops.json").read_text())
    trace = folder / found["trace"]
    assert trace.name.endswith(".xplane.pb")
    planes = {p.name: p for p in jax.profiler.ProfileData.from_file(str(trace)).planes}
    assert "/host:CPU" in planes and sum(len(list(line.events)) for line in planes["/host:CPU"].lines) > 0
    assert found["ops"] and abs(sum(op["share"] for op in found["ops"]) - 1) < 0.5
    text = (tmp_path / "out" / "report.md").read_text()
    section = text.split("## Where one step's time goes (profiled runs)")[1]
    names = [row.split("|")[1].strip() for row in section.splitlines() if row.startswith("|")][2:]
    assert names == [f"`{op['name']}`" for op in found["ops"]]
    print("trace:", trace, "ops:", [(op["name"], round(op["ms"], 2), round(op["share"], 2)) for op in found["ops"]])
