"""The JSON export (bench/output/export.py)."""

import json

from tests.conftest import results


def test_export_is_one_json_document(tmp_path, cli):
    folder = results(tmp_path / "a", {4: [200, 200]})
    out = cli("export", folder)
    assert out.returncode == 0 and out.stdout.strip() == str(folder / "results.json")
    document = json.loads((folder / "results.json").read_text())
    assert set(document) == {"env", "sweep", "points", "runs"}
    assert len(document["runs"]) == 2 and document["points"][0]["train_img_s"] == 200
