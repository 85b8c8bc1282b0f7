"""Benchmark: streaming an image folder through reglab vs a hand-written DataLoader loop.

A folder of PNG files (``root/<class>/*.png``) is written once to a temporary directory: the first
``--n`` Fashion-MNIST training images from ``../shared/data/fashion-mnist`` when the files are
there, else random 28x28 grayscale images (the output says which). Two ways of reading one epoch
of shuffled batches (batch 128) with 2 DataLoader worker processes, on CPU:

* ``reglab``       -- :func:`reglab.data.streaming.open_image_stream` (memory budget forced to
  ~0, so the folder streams), then ``StreamSplits.train_batches``: the train split's files read
  by ``ImageFiles`` (Pillow, converted, normalized with train statistics) in worker processes.
* ``hand-written`` -- the loop one would write: a ``Dataset`` whose ``__getitem__`` opens the
  file with Pillow and returns ``torch.from_numpy(np.asarray(img))`` as float with its label,
  over the same train files, ``DataLoader(ds, 128, shuffle=True, num_workers=2)``.

Both touch every batch (sum of the pixels), so neither can skip work. The timings are medians of
``--repeats`` interleaved epochs (DataLoader workers start in every epoch for both). The one-off
set-up (indexing the folder and the normalization statistics) is printed, not counted.

Target: reglab / hand-written <= 1.2.

Run: ``.venv/bin/python benchmarks/streaming.py`` (about a minute); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, env_line, load_line, median, pin_threads, table, verdict

TARGET = 1.2
BATCH = 128
WORKERS = 2


def write_folder(root: Path, n: int) -> str:
    from PIL import Image

    src = SHARED_DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    if src.is_file():
        from reglab.data.idx import read_idx

        x = read_idx(src)[:n]
        y = read_idx(SHARED_DATA / "fashion-mnist" / "train-labels-idx1-ubyte.gz")[:n]
        what = f"{n} Fashion-MNIST training images"
    else:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        what = f"{n} random 28x28 images (Fashion-MNIST files not found)"
    for i in range(n):
        d = root / f"class{int(y[i])}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i], "L").save(d / f"{i:06d}.png")
    return what


class HandWritten:
    """The Dataset one writes by hand: open, to array, to float tensor."""

    def __init__(self, files: list[tuple[Path, int]]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch
        from PIL import Image

        path, label = self.files[i]
        with Image.open(path) as im:
            a = np.array(im, dtype=np.uint8)
        return torch.from_numpy(a).float().unsqueeze(0), label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000, help="images in the folder")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: 600 images, 2 repeats, target not judged")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeats = 600, 2
    pin_threads(1)
    import torch
    from torch.utils.data import DataLoader, Subset

    from reglab.data.config import DataConfig
    from reglab.data.streaming import open_image_stream

    print(env_line())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imgs"
        what = write_folder(root, args.n)
        cfg = DataConfig.model_validate({"path": str(root), "memory_budget_mb": 1e-6, "loader_workers": WORKERS})
        t0 = time.perf_counter()
        st = open_image_stream(cfg)
        setup = time.perf_counter() - t0
        hand = HandWritten(st.dataset.files)

        def epoch_reglab(seed: int) -> float:
            gen = torch.Generator().manual_seed(seed)
            return sum(float(x.sum()) for x, _ in st.train_batches(BATCH, gen))

        def epoch_hand(seed: int) -> float:
            loader = DataLoader(
                Subset(hand, st.train_idx.tolist()),
                batch_size=BATCH,
                shuffle=True,
                num_workers=WORKERS,
                generator=torch.Generator().manual_seed(seed),
            )
            return sum(float(x.sum()) for x, _ in loader)

        times: dict[str, list[float]] = {"reglab": [], "hand-written": []}
        runs = [("reglab", epoch_reglab), ("hand-written", epoch_hand)]
        for r in range(args.repeats):
            for name, fn in runs if r % 2 == 0 else runs[::-1]:
                t = time.perf_counter()
                fn(r)
                times[name].append(time.perf_counter() - t)
        med = {k: median(v) for k, v in times.items()}
        ratio = med["reglab"] / med["hand-written"]
        print(f"data: {what}; train split {len(st.train_idx)} images, batch {BATCH}, {WORKERS} workers")
        print(f"reglab set-up (index + train statistics, not counted): {setup:.2f} s")
        rows = [[k, f"{med[k]:.3f}", f"{len(st.train_idx) / med[k]:,.0f}"] for k in times]
        print(table(["loop", "epoch s (median)", "images/s"], rows))
        judged = "" if args.quick else f"  {verdict(ratio <= TARGET)}"
        print(f"reglab / hand-written = {ratio:.2f} (target <= {TARGET}){judged}")
        print(load_line())


if __name__ == "__main__":
    main()
