from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipelines
from bench.plan.grid import installed
from bench.plan.knobs import RunSpec
from pipelines.dataset import DatasetError, make_synthetic, scan
from tests.awkward import BESIDE_CLASSES, HIDDEN, READABLE, UNREADABLE, make_awkward_tree


def test_synthetic_tree_has_the_flow_from_directory_shape(tiny_tree):
    index = scan(tiny_tree)
    assert index.classes == ["class0", "class1"]
    assert index.count("train") == 12 and index.count("val") == 4
    assert sorted(set(index.labels["train"])) == [0, 1]
    for path, label in zip(index.files["train"], index.labels["train"]):
        assert f"/class{label}/" in path


def test_synthetic_images_are_deterministic_and_textured(tmp_path):
    a = make_synthetic(tmp_path / "a", train=3, val=3, classes=3, image_size=(80, 60), seed=7)
    b = make_synthetic(tmp_path / "b", train=3, val=3, classes=3, image_size=(80, 60), seed=7)
    c = make_synthetic(tmp_path / "c", train=3, val=3, classes=3, image_size=(80, 60), seed=8)
    name = "train/class1/img_00001.jpg"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / name).read_bytes() != (c / name).read_bytes()
    pixels = np.asarray(Image.open(a / name), dtype=float)
    assert pixels.shape == (60, 80, 3)
    assert pixels.std() > 20  # not flat colour: decoding costs what a photo's does


def test_remaking_with_other_settings_replaces_the_images(tmp_path):
    make_synthetic(tmp_path / "d", train=6, val=3, classes=3, image_size=(32, 32))
    make_synthetic(tmp_path / "d", train=3, val=3, classes=3, image_size=(32, 32))
    assert scan(tmp_path / "d").count("train") == 3


def test_an_unrelated_folder_is_not_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DatasetError, match="not a gpubench synthetic tree"):
        make_synthetic(tmp_path / "mine", train=3, val=3, classes=3)


def test_unreadable_images_are_skipped_and_counted(tmp_path, tiny_tree):
    root = make_synthetic(tmp_path / "t", train=4, val=2, classes=2, image_size=(32, 32))
    (root / "train/class0/zero.jpg").write_bytes(b"")
    (root / "train/class0/text.png").write_text("not an image")
    good = (root / "train/class1/img_00001.jpg").read_bytes()
    (root / "train/class1/cut.jpg").write_bytes(good[: len(good) // 2])
    index = scan(root)
    assert index.count("train") == 4
    assert len(index.skipped) == 3
    assert any("zero.jpg" in s for s in index.skipped)


@pytest.mark.parametrize(
    "breakage, message",
    [(lambda r: None, "does not exist"), (lambda r: (r / "train").mkdir(parents=True), "no val/ folder")],
)
def test_missing_trees_are_refused(tmp_path, breakage, message):
    root = tmp_path / "missing"
    breakage(root)
    with pytest.raises(DatasetError, match=message):
        scan(root)


def test_a_class_folder_without_images_is_refused(tmp_path):
    root = make_synthetic(tmp_path / "e", train=2, val=2, classes=2, image_size=(32, 32))
    (root / "val/class1/img_00001.jpg").unlink()
    with pytest.raises(DatasetError, match="class folder .*val/class1 has no images"):
        scan(root)


def test_an_interrupted_tree_is_made_again(tmp_path):
    partial = tmp_path / ".d.partial" / "train" / "class0"
    partial.mkdir(parents=True)
    (partial / "img_00000.jpg").write_bytes(b"cut short")
    root = make_synthetic(tmp_path / "d", train=3, val=3, classes=3, image_size=(32, 32))
    assert scan(root).count("train") == 3 and not (tmp_path / ".d.partial").exists()


@pytest.mark.slow
def test_an_awkward_real_tree_gives_every_pipeline_the_same_classes_and_images(tmp_path):
    root = make_awkward_tree(tmp_path / "photos")
    index = scan(root)
    assert index.classes == ["cats", "dogs"]  # not .ipynb_checkpoints or __MACOSX
    readable = {Path(name).name for name in READABLE} | {"link.jpg"}
    for split in ("train", "val"):
        assert sorted(Path(f).name for f in index.files[split]) == sorted(list(readable) * 2)  # in both classes
        assert not any("copy" in f or "/." in f for f in index.files[split])
    assert sorted(Path(s.split(":")[0]).name for s in index.skipped) == sorted(UNREADABLE * 4)
    assert {Path(p).name for p in index.ignored} == set(HIDDEN) | set(BESIDE_CLASSES)
    assert len(index.ignored) == 2 * (len(BESIDE_CLASSES) + 2 * len(HIDDEN))  # each split's, each class's
    for pipeline in ("keras", "tfdata", "torch", "dali"):
        module = {"tfdata": "tensorflow", "dali": "nvidia.dali"}.get(pipeline, pipeline)
        if pipeline != "keras" and not installed(module):
            continue
        spec = RunSpec(
            backend="torch" if pipeline == "dali" else "tensorflow",
            backbone="tiny",
            input_size=16,
            pipeline=pipeline,
            batch=5,
            workers=1,
            window="epochs",
        )
        feed = pipelines.build(index, spec, "val")
        batches = [feed.data[i] for i in range(feed.steps)] if pipeline in ("keras", "dali") else list(feed.data)
        labels = np.concatenate([np.asarray(y) for _, y in batches]).argmax(axis=1)[: index.count("val")]
        assert list(labels) == index.labels["val"], pipeline
        assert all(np.asarray(x).shape[1:] == (16, 16, 3) for x, _ in batches)


def _tree(root: Path, train: tuple[str, ...], val: tuple[str, ...]) -> Path:
    rng = np.random.default_rng(0)
    for split, names in (("train", train), ("val", val)):
        for k, name in enumerate(names):
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                    root / split / name / f"{k}_{i}.jpg"
                )
    return root


@pytest.mark.slow
def test_a_class_folder_in_nfd_in_train_and_nfc_in_val_is_one_class_on_every_pipeline(tmp_path):
    nfd, nfc = "cafe\u0301", "caf\u00e9"  # macOS's archive vs a name typed elsewhere
    root = _tree(tmp_path / "t", ("bar", nfd), ("bar", nfc))
    index = scan(root)
    assert index.classes == ["bar", nfc]
    assert {Path(f).parent.name for f in index.files["train"]} == {"bar", nfd}  # read from the real folders
    assert index.labels["train"] == index.labels["val"] == [0, 0, 0, 1, 1, 1]
    for pipeline in ("keras", "tfdata", "torch"):
        if pipeline != "keras" and not installed({"tfdata": "tensorflow"}.get(pipeline, pipeline)):
            continue
        spec = RunSpec(backbone="tiny", input_size=16, pipeline=pipeline, batch=6, workers=1, window="epochs")
        for split in ("train", "val"):
            feed = pipelines.build(index, spec, split)
            x, y = feed.data[0] if pipeline == "keras" else next(iter(feed.data))
            assert np.asarray(x).shape == (6, 16, 16, 3), pipeline
            assert np.asarray(y).shape == (6, 2) and sorted(np.asarray(y).argmax(axis=1)) == [0, 0, 0, 1, 1, 1]


def test_classes_that_truly_differ_are_named_alone_and_spelled_out_where_they_print_alike(tmp_path):
    root = _tree(tmp_path / "d", ("bar", "cat", "dog"), ("bar", "cat", "dog\u200b"))  # a zero-width space
    with pytest.raises(DatasetError) as caught:
        scan(root)
    message = str(caught.value)
    assert "\n" not in message and "bar" not in message and "cat" not in message
    assert "only in train/: 'dog' (U+0064 U+006F U+0067)" in message
    assert "only in val/: 'dog\\u200b' (U+0064 U+006F U+0067 U+200B)" in message
    root = _tree(tmp_path / "e", ("bar", "cat"), ("bar", "owl"))
    with pytest.raises(DatasetError, match=r"only in train/: 'cat'; only in val/: 'owl'$"):
        scan(root)


def test_each_pass_of_a_long_epoch_has_its_own_order_and_holds_every_file_once():
    """An epoch of 3 passes over 4 files: the keras and torch loaders' batches, like tf.data's
    shuffle-then-repeat, read every file once a pass, in a new order each pass and each epoch."""
    from pipelines.batches import BatchOrder

    plan = BatchOrder(count=4, batch=2, images=12, shuffle=True)
    epoch = np.concatenate([plan.files(i) for i in range(6)])
    passes = epoch.reshape(3, 4)
    assert all(sorted(p) == [0, 1, 2, 3] for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    plan.next_epoch()
    assert not np.array_equal(np.concatenate([plan.files(i) for i in range(6)]), epoch)
    fixed = BatchOrder(count=4, batch=3, images=10, shuffle=False)
    assert np.concatenate([fixed.files(i) for i in range(4)]).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
