"""A folder of images (PNG, JPEG, ...), one sub-folder per class, decoded with Pillow."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.importer.errors import ImportFailed
from service.importer.sources.base import ModelInput, Rows, Source, check_kind, class_files

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "has_images"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageFolder(Source):
    """One sub-folder per class, its name the label; images directly in the folder have no
    label. Decoded with Pillow to the model's channels (L or RGB) and size."""

    def __init__(self, path: Path, model: ModelInput) -> None:
        super().__init__(path)
        check_kind(f"{path} (a folder of images)", "image", model)
        if len(model.shape) != 3 or model.shape[0] not in (1, 3):
            raise ImportFailed(
                f"{path}: the served model takes {model.kind}s {list(model.shape)}, not images"
            )
        self.model = model
        self.files = class_files(path, IMAGE_SUFFIXES, "images")
        self.total = len(self.files)

    def rows(self, start: int, stop: int, size: int) -> Iterator[Rows]:
        for first in range(start, stop, size):
            batch = self.files[first : min(first + size, stop)]
            values = np.stack([self._decode(file) for file, _ in batch])
            metadata = [{"file": file.relative_to(self.path).as_posix()} for file, _ in batch]
            yield Rows(first, values, [label for _, label in batch], metadata=metadata)

    def _decode(self, file: Path) -> np.ndarray:
        channels, height, width = self.model.shape
        try:
            with Image.open(file) as opened:
                image = opened.convert("L" if channels == 1 else "RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise ImportFailed(f"{file}: not an image Pillow can read ({exc})") from exc
        if image.size != (width, height):
            if not self.model.resize:
                raise ImportFailed(
                    f"{file} is {image.width}x{image.height}; the served model takes "
                    f"{width}x{height} and its manifest does not allow resizing"
                )
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, np.uint8)
        return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def has_images(path: Path) -> bool:
    """Images directly in `path` or in its sub-folders."""
    found = chain(path.glob("*"), path.glob("*/*"))  # stops at the first
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in found)
