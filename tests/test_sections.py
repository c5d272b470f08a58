"""The report's sections (bench/output/sections.py): scaling and the mixed-precision gain."""

from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord
from tests.conftest import render_rows
from tests.tables import table


def test_scaling_over_devices_is_reported():
    rows = []
    for gpus, img_s in ((1, 100.0), (2, 150.0)):
        spec = RunSpec(backbone="tiny", input_size=16, batch=8, gpus=gpus)
        rows.append(
            RunRecord.for_spec(
                spec,
                status="ok",
                total_s=1.0,
                train_img_s=img_s,
                devices=f"{gpus} x CPU",
                cpu_util_mean=1,
                cpu_util_p90=1,
            ).to_dict()
        )
    text = render_rows(rows, {}, {})
    scaling = table(text, "## Scaling over devices")
    columns = ("configuration", "devices", "img/s on 1", "img/s on N", "scaling")
    assert [{k: r[k] for k in columns} for r in scaling] == [
        {
            "configuration": "keras w4 threads q10 b8",
            "devices": "2 x CPU",
            "img/s on 1": "100",
            "img/s on N": "150",
            "scaling": "0.75",
        }
    ]


def test_mixed_precision_gain_is_reported():
    rows = []
    for precision, img_s in (("float32", 100.0), ("mixed_bfloat16", 180.0)):
        spec = RunSpec(backbone="tiny", input_size=16, batch=8, precision=precision)
        rows.append(
            RunRecord.for_spec(
                spec, status="ok", total_s=1.0, train_img_s=img_s, cpu_util_mean=1, cpu_util_p90=1
            ).to_dict()
        )
    text = render_rows(rows, {}, {})
    gain = table(text, "## Mixed precision")
    assert [list(r.values())[:5] for r in gain] == [["keras w4 threads q10 b8", "mixed_bfloat16", "100", "180", "1.8"]]
