"""The largest batch or input size that trains: the search on a fake device, then for real
under a memory cap."""

import pandas as pd
import pytest

from bench.plan.knobs import RunSpec
from bench.search import SearchError, search


def device(fits_below: int, knob: str = "batch", failure: str = "oom"):
    """A fake run: `knob` values below `fits_below` train, the others fail with `failure`."""

    def run(spec):
        value = getattr(spec, knob)
        return {knob: value, "status": "ok" if value < fits_below else failure, "error": ""}

    return run


def test_doubling_then_bisection_finds_the_largest_batch():
    found, tries = search(RunSpec(backbone="tiny"), "batch", 1, 65536, device(1000))
    values = [t["batch"] for t in tries]
    assert values[:11] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]  # doubling to the first failure
    assert 999 * 15 / 16 <= found <= 999  # bisection to within 1/16
    assert all(t["status"] == "ok" for t in tries if t["batch"] <= found)
    assert all(t["status"] == "oom" for t in tries if t["batch"] > found)


def test_input_sizes_stay_on_multiples_of_32():
    found, tries = search(RunSpec(backbone="tiny", batch=8), "input_size", 32, 4096, device(700, "input_size"), step=32)
    assert found == 672 and all(t["input_size"] % 32 == 0 for t in tries)


def test_nothing_fits_and_everything_fits():
    assert search(RunSpec(), "batch", 4, 64, device(2))[0] is None
    found, tries = search(RunSpec(), "batch", 4, 64, device(10**6))
    assert found == 64 and len(tries) == 5


def test_a_failure_that_is_not_memory_stops_the_search():
    with pytest.raises(SearchError, match="batch=1: error"):
        search(RunSpec(), "batch", 1, 64, device(0, failure="error"))


@pytest.mark.slow
def test_a_memory_cap_makes_the_search_real_on_a_cpu(tmp_path, cli, no_figures):
    """The capped run starts as a process of its own (a cap would count a launcher's mappings);
    the search that asks for it runs in this process."""
    capped = cli(
        "fit",
        "--backbone",
        "tiny",
        "--input-size",
        "64",
        "--mem-limit-mb",
        "3500",
        "--start",
        "4096",
        "--limit",
        "4096",
        "--out",
        "capped",
    )
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert "nothing fits" in capped.stdout
    row = pd.read_csv(tmp_path / "capped" / "runs.csv").iloc[0]
    assert row.status == "oom" and row.batch == 4096 and "3500 MB memory cap" in row.error


def test_fit_writes_its_answer_and_every_try(tmp_path, stand_in, cli):
    """The search's rows and fit.md, with stand-in runs (the memory cap above is the real one)."""
    free = cli("fit", "--backbone", "tiny", "--input-size", "64", "--start", "64", "--limit", "64", "--out", "free")
    assert free.returncode == 0 and "64 fits" in free.stdout
    assert [(s.batch, s.input_size, s.pipeline) for s in stand_in.started] == [(64, 64, "synthetic")]
    assert "| 64 | ok |" in (tmp_path / "free" / "fit.md").read_text()
    assert pd.read_csv(tmp_path / "free" / "runs.csv").status.tolist() == ["ok"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["free"]  # no data/ left in the current folder


def test_fit_takes_the_other_knobs_with_set_one_value_each(monkeypatch, capsys):
    from bench import search as search_module
    from bench.cli import main

    asked = {}
    monkeypatch.setattr(search_module, "run_search", lambda base, knob, *rest: asked.update(base=base, knob=knob) or "")
    assert (
        main(["fit", "--backbone", "tiny", "--gpu", "cpu", "--set", "backend=jax", "--set", "precision=mixed_bfloat16"])
        == 0
    )
    assert (asked["base"].backend, asked["base"].precision, asked["knob"]) == ("jax", "mixed_bfloat16", "batch")
    for wrong, said in [
        ("batch=8", "--set batch: fit searches it"),
        ("backend=jax,torch", "fit takes one value per knob"),
    ]:
        assert main(["fit", "--backbone", "tiny", "--gpu", "cpu", "--set", wrong]) == 2
        assert said in capsys.readouterr().err
