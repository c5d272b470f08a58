"""The image tree every pipeline reads: finding it (as flow_from_directory does) and making one.

Layout: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg; classes are the sorted subfolder
names of train/, and val/ must use the same ones. A class is its folder's name in Unicode NFC:
a tree unpacked from a macOS archive names `café` decomposed (NFD), the same name typed
elsewhere is composed, and both are one class; the files keep their real paths. Unlike
flow_from_directory, hidden files and folders (a name starting with '.': .ipynb_checkpoints,
.DS_Store, macOS's ._ files) and known OS clutter (Thumbs.db, desktop.ini, __MACOSX) are neither
classes nor images: a notebook's checkpoint folder would otherwise be a class with no images.
"""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# flow_from_directory's list of readable extensions.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
SPLITS = ("train", "val")
MARKER = ".gpubench-synthetic.json"
# Folders and files that operating systems, archivers and photo tools leave in photo folders.
CLUTTER = ("thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin", "system volume information")


class DatasetError(ValueError):
    """The tree cannot be used; the message is one line."""


@dataclass
class DatasetIndex:
    """The scanned image tree as the worker reads it: classes, each split's files and labels, what was left out."""

    root: str
    classes: list[str]
    files: dict[str, list[str]]  # split -> image paths
    labels: dict[str, list[int]]  # split -> class index of each path
    skipped: list[str] = field(default_factory=list)  # "path: reason" of unreadable images
    ignored: list[str] = field(default_factory=list)  # hidden files and folders, OS clutter: not looked into

    def count(self, split: str) -> int:
        """Images in `split`, what its epoch plan is sized by."""
        return len(self.files[split])

    def save(self, path: Path) -> None:
        """Written as JSON for the worker process, which reads it back with `load`."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> DatasetIndex:
        """An index `save` wrote, read back in the worker process."""
        return cls(**json.loads(Path(path).read_text()))

    def shard(self, k: int, n: int) -> DatasetIndex:
        """Process k of n's share: every n-th image of each split, from the k-th, as many for each
        process (the last len % n images of a split are left out), so that all step alike."""

        def share(items: dict) -> dict:
            return {split: values[k::n][: len(values) // n] for split, values in items.items()}

        return DatasetIndex(self.root, self.classes, share(self.files), share(self.labels), self.skipped, self.ignored)


def _unreadable(path: Path) -> str | None:
    """Why PIL cannot decode the image, or None: a full decode, since a truncated JPEG
    passes a header check and fails only mid-epoch."""
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # PIL raises many types for bad files
        return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def ignored(path: Path) -> bool:
    """Hidden (a name starting with '.') or OS clutter: never a class, never an image."""
    return path.name.startswith(".") or path.name.lower() in CLUTTER


def find_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the images under `folder`, at any depth, as flow_from_directory finds them; the hidden
    and clutter entries passed over, whose folders are not looked into)."""
    images, passed = [], []
    for top, folders, files in os.walk(folder):
        top = Path(top)
        passed += [top / name for name in folders + files if ignored(top / name)]
        folders[:] = sorted(name for name in folders if not ignored(top / name))
        images += [
            top / name for name in files if not ignored(top / name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        ]
    return sorted(images), passed


def readable(paths: list[Path], verify: bool) -> tuple[list[Path], list[str]]:
    """(readable paths, "path: reason" for the others), decoding in a thread pool."""
    reasons = [None] * len(paths)
    if verify:
        with ThreadPoolExecutor() as pool:
            reasons = list(pool.map(_unreadable, paths))
    good = [p for p, r in zip(paths, reasons) if not r]
    return good, [f"{p}: {r}" for p, r in zip(paths, reasons) if r]


def class_name(folder: Path) -> str:
    """A class folder's class: its name in NFC, so that NFD and NFC spellings are one class."""
    return unicodedata.normalize("NFC", folder.name)


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """class -> its folders under `folder` (two when NFD and NFC spellings of one name both exist)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not ignored(path):
            found.setdefault(class_name(path), []).append(path)
    return dict(sorted(found.items()))


def spelled(name: str) -> str:
    """`name` as its code points, for names that print alike: 'cafe' U+0063 U+0061 ..."""
    return f"{name!r} (" + " ".join(f"U+{ord(c):04X}" for c in name) + ")"


def _looks(name: str) -> str:
    """What a name looks like printed: compatibility forms folded, invisible characters and
    surrounding spaces dropped."""
    folded = unicodedata.normalize("NFKC", name)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf").strip()


def class_difference(root: Path, train: list[str], val: list[str]) -> str:
    """The one-line error for train/ and val/ whose classes differ: only the names that differ,
    spelled as code points where two of them print alike."""
    only_train = sorted(set(train) - set(val))
    only_val = sorted(set(val) - set(train))
    looks = [_looks(n) for n in only_train + only_val]
    alike = {n for n, look in zip(only_train + only_val, looks) if looks.count(look) > 1}

    def show(names: list[str]) -> str:
        return ", ".join(spelled(n) if n in alike else repr(n) for n in names) or "none"

    return (
        f"{root}: the classes of train/ and val/ differ: only in train/: {show(only_train)}; "
        f"only in val/: {show(only_val)}"
    )


def scan_folder(folder: str | Path, classes: list[str] | None = None, verify: bool = True):
    """One split: `folder/<class>/*`. Returns (classes, files, labels, skipped, ignored). With
    `classes` given (a model's), every subfolder must be one of them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"data directory {folder} does not exist")
    passed = [p for p in folder.iterdir() if ignored(p)]
    found = class_folders(folder)
    if not found:
        raise DatasetError(f"{folder} has no class folders (expected {folder}/<class>/*.jpg)")
    classes = [unicodedata.normalize("NFC", c) for c in classes] if classes else list(found)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(f"{folder}: classes {unknown} are not among the model's {classes}")
    files, labels, skipped = [], [], []
    for name, folders in found.items():
        paths = []
        for path in folders:
            images, clutter = find_images(path)
            paths += images
            passed += clutter
        if not paths:
            raise DatasetError(f"class folder {folders[0]} has no images")
        good, bad = readable(paths, verify)
        files += map(str, good)
        labels += [classes.index(name)] * len(good)
        skipped += bad
    if not files:
        raise DatasetError(f"{folder} has no readable images")
    return classes, files, labels, skipped, list(map(str, passed))


def scan(root: str | Path, verify: bool = True) -> DatasetIndex:
    """Index the tree, dropping unreadable images (counted in `skipped`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data directory {root} does not exist")
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DatasetError(f"data directory {root} has no {split}/ folder (expected {root}/{split}/<class>/*.jpg)")
    classes, files, labels, skipped, passed = {}, {}, {}, [], []
    for split in SPLITS:
        classes[split], files[split], labels[split], bad, clutter = scan_folder(root / split, verify=verify)
        skipped += bad
        passed += clutter
    if classes["val"] != classes["train"]:
        raise DatasetError(class_difference(root, classes["train"], classes["val"]))
    return DatasetIndex(str(root), classes["train"], files, labels, skipped, passed)


def synthetic_image(rng: np.random.Generator, label: int, classes: int, size: tuple[int, int]) -> Image.Image:
    """A photo-like image: smooth shapes of colour, edges and fine grain, so that JPEG
    coding and decoding cost about what a photo's does (flat colour decodes far faster).
    The class shifts the hue, so a model can learn it."""
    width, height = size
    coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
    hue = np.zeros(3, np.float32)
    hue[label % 3] = 60.0 * (1 + label // 3) / max(1, (classes + 2) // 3)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(4):  # a few sharp-edged discs: edges are what make JPEG blocks costly
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.05, 0.3) * min(size)
        base[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, size=3)
    grain = rng.normal(0.0, 10.0, size=(height, width, 3))
    pixels = np.clip(base * 0.75 + hue + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def make_synthetic(
    root: str | Path,
    train: int = 148,
    val: int = 30,
    classes: int = 3,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 0,
) -> Path:
    """Write a deterministic tree; an existing one made with the same settings is kept. The
    tree is written beside its place and renamed there when complete, so an interrupted run
    leaves nothing half made under `root`."""
    root = Path(root)
    settings = {"train": train, "val": val, "classes": classes, "image_size": list(image_size), "seed": seed}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    if root.exists() and any(root.iterdir()) and not marker.is_file():
        raise DatasetError(f"{root} exists and is not a gpubench synthetic tree; choose an empty folder")
    if train < classes or val < classes or classes < 1:
        raise DatasetError(f"need at least one image per class: train={train} val={val} classes={classes}")
    partial = root.parent / f".{root.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    names = [f"class{i}" for i in range(classes)]
    for split, count, split_seed in (("train", train, 0), ("val", val, 1)):
        for name in names:
            (partial / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            label = i % classes
            rng = np.random.default_rng([seed, split_seed, i])
            image = synthetic_image(rng, label, classes, image_size)
            image.save(partial / split / names[label] / f"img_{i:05d}.jpg", quality=90)
    (partial / MARKER).write_text(json.dumps(settings))
    shutil.rmtree(root, ignore_errors=True)  # empty, or ours with other settings
    partial.rename(root)
    return root
