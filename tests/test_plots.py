"""The plots (bench/output/plots.py) a report draws."""

from tests.conftest import results


def test_reports_draw_their_plots(tmp_path):
    folder = results(tmp_path / "a", {1: [100, 100], 4: [200, 210]})
    report = (folder / "report.md").read_text()
    assert "![images/s against batch size](throughput.png)" in report
    assert (folder / "throughput.png").stat().st_size > 5000
