"""The machines report (bench/output/machines.py): several machines' results side by side."""

from tests.conftest import GPU_ENV, gpubench, results


def test_machines_side_by_side(tmp_path):
    cpu = results(tmp_path / "results" / "cpu" / "t", {4: [200, 200, 200]})
    h200 = results(tmp_path / "results" / "h200" / "t", {4: [5000, 5000, 5000]}, env=GPU_ENV, label="h200",
                   power=500.0)
    out = gpubench("report", cpu, h200, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "results" / "machines-t.md").read_text()
    assert "| cpu " in text and "| h200 " in text and "1 x NVIDIA H200" in text
    h200_row = next(line for line in text.splitlines() if line.startswith("| ") and "| h200 " in line)
    cells = [c.strip() for c in h200_row.strip("|").split("|")]
    assert "10" in cells  # 5000 images/s at 500 W: 10 images per joule, in its own column
    assert "1428.57" in cells  # 5000 images/s at an indicative $3.5 an hour
    assert "indicative" in text
    png = tmp_path / "results" / "machines-t.png"
    assert png.is_file() and png.stat().st_size > 5000
