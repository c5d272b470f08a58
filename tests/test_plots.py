"""The plots (bench/output/plots.py) a report draws."""

from tests.conftest import results


def test_reports_draw_their_plots(tmp_path):
    folder = results(tmp_path / "a", {1: [100, 100], 4: [200, 210]}, plots=True)
    report = (folder / "report.md").read_text()
    assert "![images/s against batch size](throughput.png)" in report
    assert (folder / "throughput.png").stat().st_size > 5000


def test_a_quick_rewrite_links_the_figures_the_last_full_write_drew(tmp_path):
    from bench.output import report

    folder = results(tmp_path / "a", {1: [100, 100], 4: [200, 210]}, plots=True)
    drawn = [line for line in (folder / "report.md").read_text().splitlines() if line.startswith("![")]
    quick = [line for line in report.write(folder, plots=False).read_text().splitlines() if line.startswith("![")]
    assert [line.split("](")[1] for line in quick] == [line.split("](")[1] for line in drawn]
    assert quick[0] == drawn[0] == "![images/s against batch size](throughput.png)"
    (folder / "throughput.png").unlink()
    assert "throughput.png" not in report.write(folder, plots=False).read_text()
