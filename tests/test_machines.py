"""The machines report (bench/output/machines.py): several machines' results side by side, and the pick."""

from tests.conftest import CPU_ENV, GPU_ENV, results
from tests.tables import table


def test_machines_side_by_side(tmp_path, cli):
    cpu = results(tmp_path / "results" / "cpu" / "t", {4: [200, 200, 200]})
    h200 = results(tmp_path / "results" / "h200" / "t", {4: [5000, 5000, 5000]}, env=GPU_ENV, label="h200", power=500.0)
    out = cli("report", cpu, h200, "--plot")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "results" / "machines-t.md").read_text()
    machines = {row["machine"]: row for row in table(text, "## tiny 16px")}
    assert list(machines) == ["cpu", "h200"] and machines["h200"]["hardware"] == "1 x NVIDIA H200"
    assert machines["h200"]["images per joule (NVML power)"] == "10"  # 5000 images/s at 500 W
    assert machines["h200"]["images per $"] == "5,142,857"  # 5000 images/s at an indicative $3.5 an hour
    assert (
        machines["cpu"]["images per $"] == ""
        and machines["h200"]["images/s (range, runs)"] == "5000.0 (5000.0-5000.0, 3 runs)"
    )
    assert any(line.startswith("Prices: indicative") for line in text.splitlines())
    png = tmp_path / "results" / "machines-t.png"
    assert png.is_file() and png.stat().st_size > 5000


def _two_cpus(tmp_path, a_rates, b_rates):
    folders = []
    for host, rates in (("hostA", a_rates), ("hostB", b_rates)):
        folder = results(tmp_path / "results" / "cpu" / host / "t", {4: rates}, env={**CPU_ENV, "host": host})
        folders.append(folder)
    return folders


def test_two_cpu_machines_are_told_apart_and_the_report_picks_one_with_its_confidence(tmp_path, cli):
    a, b = _two_cpus(tmp_path, [300, 310, 305], [200, 210, 205])
    inputs = {p: p.read_bytes() for f in (a, b) for p in (f / "report.md", f / "points.csv")}
    out = cli("report", a, b, "--price", "cpu-hostA=0.40")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "results" / "cpu" / "machines-t.md").read_text()
    assert [r["machine"] for r in table(text, "## tiny 16px")] == ["cpu-hostA", "cpu-hostB"]
    pick = text.split("## Pick")[1].strip()
    assert (
        pick.startswith("- For tiny 16px, pick **cpu-hostA** (CPU: ")
        and "305 images/s, 1.49x cpu-hostB's 205 (confident: ahead beyond the noise (" in pick
    )
    assert "Give prices with --price MACHINE=USD_PER_HOUR" in pick  # only one of the two has a price
    assert {p: p.read_bytes() for p in inputs} == inputs  # its inputs only read
    assert not list((tmp_path / "results" / "cpu").glob("*.png"))  # no figure unless --plot


def test_a_difference_within_the_noise_makes_the_pick_unsure(tmp_path):
    from bench.output import machines

    a, b = _two_cpus(tmp_path, [300, 200, 260], [250, 240, 245])
    text = machines.render([a, b], tmp_path / "m.md", prices={"cpu-hostA": 1.0, "cpu-hostB": 0.5})
    assert "(not confident: the difference is within the noise (" in text
    assert (
        "so measure again before paying for it). Per dollar, cpu-hostB trains the most: 1,764,000 images per $." in text
    )


def test_folders_of_one_name_measured_under_different_load_are_told_apart_and_not_picked_between(tmp_path):
    """The same sweep twice on one machine, once quiet and once with other work taking 60% of its CPU:
    the two get names of their own, the loaded one's bound is withheld for load, and the pick says why it
    is not confident instead of calling a 4x gap a confident lead."""
    from bench.output import machines
    from tests.conftest import CPU_ENV

    busy = {"cpu_util_mean": 70.0, "proc_cpu_pct_mean": 20.0}  # 2 threads: others took 70 - 20 / 2 = 60%
    quiet = results(
        tmp_path / "a" / "cpu" / "vm" / "quick", {4: [800, 810, 805]}, cpu_util_mean=52.0, proc_cpu_pct_mean=100.0
    )
    loaded = results(tmp_path / "b" / "cpu" / "vm" / "quick", {4: [200, 210, 205]}, **busy)
    assert CPU_ENV["cpu_threads"] == 2
    report = (loaded / "report.md").read_text()
    assert "- Load: other work took 60% to 60% of the CPU during the measured windows (median 60%)" in report
    text = machines.render([quiet, loaded], tmp_path / "m.md")
    names = [r["machine"] for r in table(text, "## tiny 16px")]
    assert len(set(names)) == 2 and all(n.startswith("cpu-") for n in names)
    pick = text.split("## Pick")[1]
    assert "not confident: other work took 2% on " in pick and "60% on " in pick and "(over 30%)" in pick
