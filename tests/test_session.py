"""The sweep session's own mechanics, without a worker: how often a sweep's report is rebuilt, and
where a session puts what it makes."""

from bench.session import REPORT_EVERY_S, Every


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_report_is_rebuilt_at_the_first_row_then_at_most_every_few_seconds():
    clock, rebuilt_at = FakeClock(), []
    on_row = Every(REPORT_EVERY_S, lambda row: rebuilt_at.append((clock.now, row)), clock)
    for row in range(2000):  # a row every second
        clock.now = float(row)
        on_row(row)
    assert rebuilt_at[0] == (0.0, 0)
    gaps = [b[0] - a[0] for a, b in zip(rebuilt_at, rebuilt_at[1:])]
    assert set(gaps) == {REPORT_EVERY_S} and len(rebuilt_at) == -(-2000 // REPORT_EVERY_S)
    clock.now += 0.5  # rows closer together than the interval are not each rebuilt
    on_row("late")
    assert rebuilt_at[-1][1] != "late"


def test_a_session_makes_its_data_results_and_peaks_where_it_is_told_and_sets_no_variable_of_its_own(
    tmp_path, stand_in, monkeypatch
):
    """Options' roots, not the working folder or the home folder; --gpu cpu's variables go to every
    run and peak probe, never into this process's environment."""
    import dataclasses
    import os

    from bench import session
    from bench.plan.grid import expand
    from bench.plan.presets import DataSpec
    from bench.run import gate, peak

    probed = []
    monkeypatch.setattr(peak, "measure_peaks", lambda *args, **kwargs: probed.append(kwargs) or {})
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")  # the working folder, which stays empty
    before = dict(os.environ)
    options = session.Options(
        gpu="cpu",
        ceilings=True,
        data_root=tmp_path / "d",
        results_root=tmp_path / "r",
        peak_cache=tmp_path / "c",
        as_needed=True,
    )
    grid = expand({"backbone": ["tiny"], "pipeline": ["keras"], "batch": [4], "input_size": [16], "epochs": [1]})
    data = DataSpec(train=4, val=2, classes=2, image_size="16x12")
    report, rows = session.run(grid, "t", data, options)
    assert dict(os.environ) == before and not list((tmp_path / "here").iterdir())
    assert (tmp_path / "d" / data.dirname() / "train").is_dir()
    assert report.parent.parent.parent == tmp_path / "r" / "cpu" and report.parent.name == "t"
    assert len(rows) == len(stand_in.started) == 3  # the point and its two ceilings
    hidden = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu", gate.LABEL_ENV: "cpu"}
    for given in stand_in.given + [p["given"] for p in probed]:
        assert {k: given[k] for k in hidden} == hidden
    assert [p["cache_dir"] for p in probed] == [tmp_path / "c"]
    again = dataclasses.replace(options, out=str(tmp_path / "elsewhere"))
    assert session.run(grid, "t", data, again)[0].parent == tmp_path / "elsewhere"  # --out wins
