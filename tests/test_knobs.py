"""The knobs (bench/plan/knobs.py): point ids, --set values."""

import pytest

from bench.plan.knobs import BACKENDS, KINDS, KNOBS, LATER_KNOBS, RunSpec, SpecError, coerce, parse_override


def test_point_id_is_stable_and_ignores_the_repeat():
    a, b = RunSpec(batch=8), RunSpec(batch=8, repeat=3)
    assert a.point_id == b.point_id and a.run_id != b.run_id
    assert RunSpec(batch=9).point_id != a.point_id


def test_knobs_added_later_keep_the_ids_of_results_from_before_them():
    import hashlib
    import json

    later = ("backend", "window", "data_format", "transfer", "hosts", "shaped_by")
    assert set(LATER_KNOBS) == set(later)
    knobs = {k: v for k, v in RunSpec(batch=8).knobs().items() if k not in later}  # a point as recorded then
    before = hashlib.sha1(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:10]
    assert RunSpec(batch=8).point_id == before
    ids = {RunSpec(batch=8, backend=b).point_id for b in BACKENDS}
    assert len(ids) == 3
    assert (
        RunSpec(batch=8, window="epochs").point_id != before != RunSpec(batch=8, data_format="channels_first").point_id
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("bogus=1", "unknown knob 'bogus'"),
        ("batch=eight", "expected a whole number"),
        ("use_multiprocessing=maybe", "expected true or false"),
        ("batch", "expected KNOB=VALUE"),
    ],
)
def test_bad_overrides_say_what_is_wrong(text, message):
    with pytest.raises(SpecError, match=message):
        parse_override(text)


def test_override_values_take_the_knob_type():
    assert parse_override("use_multiprocessing=true,false") == ("use_multiprocessing", [True, False])
    assert parse_override("batch=6,10") == ("batch", [6, 10])


def test_values_are_coerced_by_the_knobs_real_types_not_their_annotation_text():
    """Each knob's types come from RunSpec's annotations as types: a blank is None only where the
    knob takes None, a word of a str knob stays a word (interpolation's name holds 'int')."""
    assert set(KINDS) == set(KNOBS) and all(isinstance(t, type) for kinds in KINDS.values() for t in kinds)
    assert KINDS["workers"] == (int, type(None)) and KINDS["epochs"] == (int,) and KINDS["backbone"] == (str,)
    assert coerce("workers", "none") is None and coerce("cache", "") is None and coerce("cache", "yes") is True
    assert coerce("interpolation", "bilinear") == "bilinear" and coerce("input_size", " 64 ") == 64
    with pytest.raises(SpecError, match="expected a whole number"):
        coerce("epochs", "none")
    # a blank batch is a pipeline of the user's that makes its own; any other pipeline needs a number
    from bench.plan.grid import build_grid

    with pytest.raises(SpecError, match="batch: a number is needed for pipeline keras"):
        build_grid([{"pipeline": ["keras"]}], ["batch=none"])


def test_progress_labels_and_setting_names_are_one_display_of_the_knob_metadata():
    from bench.analyse.points import setting

    spec = RunSpec(backend="jax", batch=8, gpus=2, hosts=2, cache=True, precision="mixed_bfloat16", transfer="uint8")
    words = spec.label().split()
    assert words[:5] == ["jax", "vgg16", "224px", "keras", "b8"]
    assert setting(spec.knobs()).split() == [
        "keras",
        "w4",
        "threads",
        "q10",
        "2",
        "gpus",
        "cache",
        "bfloat16",
        "uint8",
        "2",
        "hosts",
    ]
    assert " ".join(words[5:]) == setting(spec.knobs())[len("keras ") :]
    # a table's row: blanks (NaN) left out, 2.0 shown as 2, knobs at a hidden default left out
    row = {
        "pipeline": "tfdata",
        "workers": 2.0,
        "use_multiprocessing": float("nan"),
        "max_queue_size": 4.0,
        "cache": False,
        "gpus": 1,
        "precision": "float32",
        "xla": "on",
    }
    assert setting(row).split() == ["tfdata", "w2", "q4", "xla", "on"]
