"""Image folders (``images:ROOT``): ``ROOT/<class>/*.png|jpg`` or, with an official test split,
``ROOT/train/<class>/...`` and ``ROOT/test/<class>/...`` - the layout of torchvision's
``ImageFolder``. Images are read with Pillow, converted to grayscale or RGB (``data.color``;
``auto``: grayscale when every image is) and resized to ``data.image_size`` (needed when sizes
differ). Small folders are loaded into memory as uint8 arrays; :class:`ImageFiles` reads the same
files lazily, one at a time, for streaming (:mod:`reglab.data.streaming`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reglab.data.base import RawData
from reglab.errors import DataError

if TYPE_CHECKING:
    from reglab.data.config import DataConfig

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class ImageIndex:
    """The files of an image folder, their labels and how they are decoded (no pixels read)."""

    root: Path
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]] | None
    classes: list[str]
    size: tuple[int, int]  # (H, W)
    channels: int  # 1 (grayscale) or 3 (RGB)

    @property
    def mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"

    def nbytes(self) -> int:
        """Bytes of the whole folder as float32 tensors (what the in-memory path would hold)."""
        n = len(self.train) + len(self.test or [])
        return n * self.channels * self.size[0] * self.size[1] * 4


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    out = []
    for k, c in enumerate(classes):
        d = folder / c
        if d.is_dir():
            out += [(f, k) for f in sorted(d.iterdir()) if f.suffix.lower() in SUFFIXES and f.is_file()]
    return out


def index_folder(cfg: DataConfig) -> ImageIndex:
    """Find the files and decide size and channels from the image headers (cheap: no decoding)."""
    from PIL import Image

    root = Path(cfg.name.partition(":")[2]).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{root}: image folder not found (data.name is {cfg.name!r}); give ROOT with ROOT/<class>/*.png"
        )
    split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if split else root
    classes = [d.name for d in _class_dirs(train_root)]
    if len(classes) < 2:
        raise DataError(
            f"{train_root}: needs one sub-folder per class (at least 2), found {len(classes)}; lay it out as "
            "ROOT/<class>/*.png"
        )
    train = _files(train_root, classes)
    test = None
    if split:
        extra = sorted({d.name for d in _class_dirs(root / "test")} - set(classes))
        if extra:
            raise DataError(f"{root / 'test'}: classes {extra} have no training images")
        test = _files(root / "test", classes)
    empty = [c for k, c in enumerate(classes) if not any(lab == k for _, lab in train)]
    if empty:
        raise DataError(f"{train_root}: no images ({'/'.join(SUFFIXES)}) for classes {empty}")
    sizes: set[tuple[int, int]] = set()
    gray = True
    for f, _ in train + (test or []):
        try:
            with Image.open(f) as im:
                sizes.add((im.height, im.width))
                gray = gray and im.mode in GRAY_MODES
        except Exception as e:  # PIL raises several types for unreadable files
            raise unreadable(f, e) from None
    if cfg.image_size is not None:
        size = (cfg.image_size, cfg.image_size) if isinstance(cfg.image_size, int) else tuple(cfg.image_size)
    elif len(sizes) == 1:
        size = next(iter(sizes))
    else:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
        raise DataError(f"{root}: images differ in size ({shown}, ...); set data.image_size to resize them to one")
    channels = 1 if cfg.color == "grayscale" or (cfg.color == "auto" and gray) else 3
    return ImageIndex(root, train, test, classes, (int(size[0]), int(size[1])), channels)


def unreadable(path: Path, err: BaseException) -> DataError:
    """One line naming the image file and what Pillow said (``OSError: image file is truncated``)."""
    said = (str(err).strip().splitlines() or [""])[0][:200]
    what = f"{type(err).__name__}: {said}" if said else type(err).__name__
    return DataError(f"{path}: cannot read as an image ({what}); remove or replace the file")


def decode_all(index: ImageIndex) -> None:
    """Decode every image of the folder in full (Pillow's ``load()``; :func:`index_folder` reads
    only the headers), so a truncated or corrupt file is refused, naming it, before a study stores
    anything rather than in the middle of its runs. Threads: Pillow decodes without the GIL."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def decode(path: Path) -> DataError | None:
        try:
            with Image.open(path) as im:
                im.load()
        except Exception as e:  # PIL raises several types for unreadable files
            return unreadable(path, e)
        return None

    files = [f for f, _ in index.train + (index.test or [])]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for problem in pool.map(decode, files):  # in file order: the first bad file is named
            if problem is not None:
                raise problem


def read_image(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image as uint8 (C, H, W): converted to ``mode``, resized (bilinear) when needed."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = im.convert(mode)
            if (img.height, img.width) != size:
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:
        raise unreadable(path, e) from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _stack(files: list[tuple[Path, int]], index: ImageIndex) -> tuple[np.ndarray, np.ndarray]:
    h, w = index.size
    x = np.empty((len(files), index.channels, h, w), np.uint8)
    for i, (f, _) in enumerate(files):
        x[i] = read_image(f, index.size, index.mode)
    return x, np.array([lab for _, lab in files], dtype=np.int64)


def load_image_folder(cfg: DataConfig) -> RawData:
    """``images:ROOT`` in memory (uint8 (N, C, H, W); normalized per channel by make_splits)."""
    index = index_folder(cfg)
    x, y = _stack(index.train, index)
    xt = yt = None
    if index.test is not None:
        xt, yt = _stack(index.test, index)
    return RawData(
        x_train=x, y_train=y, x_test=xt, y_test=yt, image=True, classes=index.classes, source=f"images ({index.root})"
    )


class ImageFiles:
    """A map-style dataset over image files, read lazily: ``ds[i] -> (float32 (C, H, W), label)``,
    normalized with ``mean``/``std`` (per channel, from the train split). Picklable, so DataLoader
    worker processes can read it."""

    def __init__(
        self, files: list[tuple[Path, int]], size: tuple[int, int], mode: str, mean: Any = None, std: Any = None
    ) -> None:
        self.files, self.size, self.mode = files, size, mode
        self.mean = None if mean is None else np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = None if std is None else np.asarray(std, np.float32).reshape(-1, 1, 1)
        self.targets = np.array([lab for _, lab in files], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        x = read_image(self.files[i][0], self.size, self.mode).astype(np.float32)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return torch.from_numpy(x), int(self.targets[i])
