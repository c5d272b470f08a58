"""How the keras and torch pipelines read an image: Keras's own reader (PIL underneath), as
flow_from_directory did, and optionally a decoded cache in shared memory."""

from __future__ import annotations

import multiprocessing

import keras
import numpy as np


def load_image(path: str, size: int, interpolation: str, transfer: str = "float32") -> np.ndarray:
    """Keras's own reader (PIL underneath); float32 scaled by 1/255, as ImageDataGenerator's
    rescale did, or the uint8 pixels for the model to scale."""
    image = keras.utils.load_img(path, target_size=(size, size), interpolation=interpolation)
    pixels = keras.utils.img_to_array(image, dtype="uint8")
    return pixels if transfer == "uint8" else to_unit_range(pixels)


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1]: the same division the model's UnitRange makes on the device."""
    return pixels.astype("float32") / 255.0


class DecodedImages:
    """Each image decoded and resized once, its uint8 pixels kept in shared memory: later reads,
    from any loader thread or forked loader process, skip the decode. What a GPU sees when the
    data is already prepared: the input ceiling without decode. Holds files x size x size x 3
    bytes (224 px: 150 KB an image)."""

    def __init__(self, files: list[str], size: int, interpolation: str):
        self.files, self.size, self.interpolation = list(files), size, interpolation
        self._pixels = multiprocessing.RawArray("B", len(self.files) * size * size * 3)
        self._kept = multiprocessing.RawArray("b", len(self.files))
        self._decodes = multiprocessing.Value("l", 0)  # with a lock: loader processes count at once

    @property
    def decodes(self) -> int:
        """How many times a file was decoded: once each, read after read."""
        return self._decodes.value

    def __getitem__(self, j: int) -> np.ndarray:
        pixels = np.frombuffer(self._pixels, dtype=np.uint8).reshape(len(self.files), self.size, self.size, 3)
        if not self._kept[j]:
            pixels[j] = load_image(self.files[j], self.size, self.interpolation, "uint8")
            self._kept[j] = 1
            with self._decodes.get_lock():  # += is a read and a write: unlocked, two processes lost one
                self._decodes.value += 1
        return pixels[j].copy()


class ImageReader:
    """Image j of `files` as the spec asks: decoded each time, or from the decoded cache."""

    def __init__(self, files: list[str], size: int, interpolation: str, transfer: str, cache: bool):
        self.files, self.size, self.interpolation, self.transfer = list(files), size, interpolation, transfer
        self.cache = DecodedImages(self.files, size, interpolation) if cache else None

    def __call__(self, j: int) -> np.ndarray:
        if self.cache is None:
            return load_image(self.files[j], self.size, self.interpolation, self.transfer)
        pixels = self.cache[j]
        return pixels if self.transfer == "uint8" else to_unit_range(pixels)
