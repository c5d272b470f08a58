"""A tree of the awkward but real files photo folders hold, made locally: what phones, scanners,
screenshots, archives, notebooks and operating systems leave beside the images.

Each class folder mixes readable images of many kinds (EXIF-rotated phone photos with upper-case
extensions, progressive and CMYK and greyscale JPEGs, RGBA, palette, 16-bit and greyscale-alpha
PNGs, BMP, a nested folder, a symlink) with files that are not images by their extension (HEIC,
MOV, WebP, GIF, a zip, notes), unreadable images (empty, cut short, text named .jpg), and hidden
or OS entries (macOS's ._ files and .DS_Store, Thumbs.db, desktop.ini, a notebook's
.ipynb_checkpoints folder and an archive's __MACOSX folder beside the classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

READABLE = {  # name -> how it is written; every pipeline reads these
    "IMG_0001.JPG": lambda im, p: im.save(p, exif=_rotated()),
    "IMG_0002.jpeg": lambda im, p: im.save(p, progressive=True),
    "scan_cmyk.jpg": lambda im, p: im.convert("CMYK").save(p),
    "grey.jpg": lambda im, p: im.convert("L").save(p),
    "screenshot.png": lambda im, p: im.convert("RGBA").save(p),
    "palette.png": lambda im, p: im.convert("P").save(p),
    "grey_alpha.png": lambda im, p: im.convert("LA").save(p),
    "depth16.png": lambda im, p: Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257).save(p),
    "old.BMP": lambda im, p: im.save(p),
    "burst/IMG_0004.jpg": lambda im, p: im.save(p),
}
NOT_IMAGES = ("IMG_0001.HEIC", "IMG_0001.MOV", "photo.webp", "anim.gif", "album.zip", "notes.txt")
UNREADABLE = ("empty.jpg", "cut.jpg", "text.jpg")
HIDDEN = (".DS_Store", "._IMG_0001.JPG", "Thumbs.db", "desktop.ini", ".hidden.jpg")
BESIDE_CLASSES = (".ipynb_checkpoints", "__MACOSX", ".DS_Store")


def _rotated() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees, as a phone held upright writes it
    return exif


def make_awkward_tree(root: Path, classes=("cats", "dogs")) -> Path:
    """A tree with what users' folders hold beside their images (hidden files, copies, links, broken
    and mislabelled files, other formats): what the dataset scan must read or pass over."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in BESIDE_CLASSES:
            entry = root / split / name
            if name.startswith(".DS"):
                entry.parent.mkdir(parents=True, exist_ok=True)
                entry.write_bytes(b"\x00\x00\x00\x01Bud1")
            else:  # folders of copies: a notebook's checkpoints, an archive's resource forks
                (entry / classes[0]).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(entry / classes[0] / "copy.jpg")
                (entry / classes[0] / "._copy.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        for label, name in enumerate(classes):
            folder = root / split / name
            (folder / "burst").mkdir(parents=True, exist_ok=True)
            for file, write in READABLE.items():
                write(Image.fromarray(rng.integers(0, 255, (30 + label, 40, 3), dtype=np.uint8)), folder / file)
            (folder / "link.jpg").symlink_to(folder / "IMG_0002.jpeg")
            for file in NOT_IMAGES:
                (folder / file).write_bytes(b"not an image gpubench reads")
            good = (folder / "IMG_0002.jpeg").read_bytes()
            (folder / "empty.jpg").write_bytes(b"")
            (folder / "cut.jpg").write_bytes(good[: len(good) // 3])
            (folder / "text.jpg").write_text("a caption, saved with the wrong name")
            for file in HIDDEN:
                (folder / file).write_bytes(b"\x00\x05\x16\x07 not for us")
    return root
