"""The machines report (bench/output/machines.py): several machines' results side by side."""

from tests.conftest import GPU_ENV, gpubench, results
from tests.tables import table


def test_machines_side_by_side(tmp_path):
    cpu = results(tmp_path / "results" / "cpu" / "t", {4: [200, 200, 200]})
    h200 = results(tmp_path / "results" / "h200" / "t", {4: [5000, 5000, 5000]}, env=GPU_ENV, label="h200",
                   power=500.0)
    out = gpubench("report", cpu, h200, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "results" / "machines-t.md").read_text()
    machines = {row["machine"]: row for row in table(text, "## tiny 16px")}
    assert list(machines) == ["cpu", "h200"] and machines["h200"]["hardware"] == "1 x NVIDIA H200"
    assert machines["h200"]["images per joule (NVML power)"] == "10"  # 5000 images/s at 500 W
    assert machines["h200"]["images/s per $/hour"] == "1428.57"  # 5000 images/s at an indicative $3.5 an hour
    assert machines["cpu"]["images/s per $/hour"] == ""  # no price for a CPU
    assert any(line.startswith("Prices: indicative") for line in text.splitlines())
    png = tmp_path / "results" / "machines-t.png"
    assert png.is_file() and png.stat().st_size > 5000
