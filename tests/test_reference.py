import pandas as pd

from bench.analyse.points import medians
from bench.analyse.reference import load_seed
from bench.output.sections import seed_section
from bench.plan.knobs import RunSpec
from bench.results.record import RunRecord
from tests.tables import table

SEED_SWEEP = {"gpu": "2080ti", "train_images": 148, "val_images": 30, "preset": "seed"}


def points(total_s=100.0, **knobs):
    base = dict(backbone="vgg16", input_size=224, epochs=20, checkpoint=True, workers=32, max_queue_size=10)
    rows = []
    for batch in (30, 6):
        spec = RunSpec(**{**base, "batch": batch, **knobs})
        rows.append(
            RunRecord.for_spec(
                spec,
                status="ok",
                total_s=total_s,
                train_img_s=30.0,
                val_s_total=5.0,
                checkpoint_s_total=2.0,
                cpu_util_mean=1,
                cpu_util_p90=1,
            ).to_dict()
        )
    return rows


def test_the_reference_holds_every_seed_figure():
    seed = load_seed()
    assert len(seed) == 21 and set(seed.gpu_label) == {"2080ti", "gtx1060"}
    row = seed[(seed.table == 1) & (seed.batch == 30)].iloc[0]
    assert row.total_s == 197.78 and row.img_s == round(20 * 178 / 197.78, 2)


def test_same_gpu_puts_the_seeds_runs_beside_the_measured_ones():
    text = "\n".join(seed_section(medians(pd.DataFrame(points(total_s=50.0))), SEED_SWEEP))
    assert "## Beside the seed (2019)" in text and "same GPU (2080ti)" in text
    assert "GTX 1060" not in text
    # batch 30, 32 workers, threads, queue 10, 1 GPU: the Windows (197.78 s) and Ubuntu (404.95 s) runs
    beside = [r for r in table(text, "## Beside the seed (2019)") if r["batch"] == "30"]
    assert [(r["seed machine"].split(",")[0], r["seed total (s)"], r["speed-up"]) for r in beside] == [
        ("Windows 10 desktop", "197.78", "3.96"),
        ("Ubuntu 18.04 desktop", "404.95", "8.1"),
    ]


def test_other_gpus_see_every_seed_machine_named():
    text = "\n".join(seed_section(medians(pd.DataFrame(points())), {**SEED_SWEEP, "gpu": "h200"}))
    assert "This machine is `h200`" in text and "GTX 1060" in text and "RTX 2080 Ti" in text


def test_another_workload_is_not_compared():
    rows = points(input_size=64, epochs=2)
    text = "\n".join(seed_section(medians(pd.DataFrame(rows)), {**SEED_SWEEP, "train_images": 40}))
    assert "not put beside" in text
    assert "input_size 64 (the seed: 224)" in text and "epochs 2 (the seed: 20)" in text
    assert "40 + 30 images" in text and "| batch" not in text


def test_no_section_without_the_seeds_loader_settings():
    assert seed_section(medians(pd.DataFrame(points(workers=4))), SEED_SWEEP) == []


def test_the_machines_report_names_the_seeds_figure_where_it_matches():
    from bench.analyse.reference import seed_figure

    point = medians(pd.DataFrame(points(total_s=50.0))).iloc[0]
    assert seed_figure(point, SEED_SWEEP) == (197.78, "Windows 10 desktop, 16 CPU threads, 32 GB RAM, RTX 2080 Ti")
    assert seed_figure(point, {**SEED_SWEEP, "train_images": 40}) is None


def test_the_reference_table_holds_the_seeds_own_figures_as_the_project_keeps_them():
    from pathlib import Path

    original = pd.read_csv(Path(__file__).resolve().parents[1] / "docs" / "seed" / "seed-2019-timings.csv")
    reference = load_seed()
    pd.testing.assert_frame_equal(reference[list(original.columns)], original)
