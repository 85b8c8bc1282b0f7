"""Streaming (issue 11): an image folder over the memory budget is read lazily through a
DataLoader with worker processes, split exactly like the in-memory path, normalized with train
statistics, deterministic per seed, and its test split is counted on every read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reglab.config import DataConfig
from reglab.data import load_data
from reglab.data.base import DataSplits
from reglab.data.streaming import StreamSplits, memory_budget, open_data, should_stream


def _folder(root: Path, n: int = 60, size: int = 8) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        k = i % 3
        d = root / f"c{k}"
        d.mkdir(parents=True, exist_ok=True)
        px = np.clip(rng.normal(60 + 70 * k, 20, (size, size)), 0, 255).astype(np.uint8)  # class = brightness
        Image.fromarray(px, "L").save(d / f"{i:03d}.png")
    return root


def _cfg(root: Path, **kw: object) -> DataConfig:
    return DataConfig.model_validate({"path": str(root), "split_seed": 2, "loader_workers": 0, **kw})


def test_budget_decides(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs")
    assert memory_budget(DataConfig()) > 2**20 and not should_stream(_cfg(root))
    assert isinstance(open_data(_cfg(root)), DataSplits)
    assert should_stream(_cfg(root, memory_budget_mb=0.001))  # 60 images x 256 B > 1 KB
    assert isinstance(open_data(_cfg(root, memory_budget_mb=0.001)), StreamSplits)


def test_streamed_splits_equal_the_in_memory_ones(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs")
    mem = load_data(_cfg(root))
    st = open_data(_cfg(root, memory_budget_mb=0.001, loader_workers=2))
    assert isinstance(st, StreamSplits)
    assert st.sizes() == mem.sizes() and st.input_shape == mem.input_shape and st.n_classes == 3
    torch.testing.assert_close(st.y_train, mem.y_train)
    xs = torch.cat([x for x, _ in st.val_batches(7)])
    torch.testing.assert_close(xs, mem.x_val, rtol=1e-4, atol=1e-4)  # same normalization (train statistics)
    assert st.test.reads == 0
    x_te = torch.cat([x for x, _ in st.test.read(16)])
    assert st.test.reads == 1 and len(x_te) == len(mem.test)
    torch.testing.assert_close(st.test.labels, mem.test.labels)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_training_is_deterministic_and_learns(tmp_path: Path, workers: int) -> None:
    root = _folder(tmp_path / "imgs")
    st = open_data(_cfg(root, memory_budget_mb=0.001, loader_workers=workers))
    assert isinstance(st, StreamSplits)

    def train(seed: int) -> tuple[list[float], float]:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(4):
            for xb, yb in st.train_batches(16, gen):
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in st.val_batches(32))
        return losses, correct / st.sizes()["val"]

    a, acc = train(0)
    b, _ = train(0)
    assert a == b and len(a) == 4 * -(-st.sizes()["train"] // 16)
    assert acc >= 0.8 and np.mean(a[-3:]) < np.mean(a[:3])


class _Counted(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A dataset with a ``targets`` attribute that counts the items it hands out."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.targets, self.reads = x, y, 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.reads += 1
        return torch.from_numpy(self.x[i]), int(self.targets[i])


def test_any_dataset_streams_with_the_in_memory_split() -> None:
    from reglab.data.arrays import splits_from_python
    from reglab.data.streaming import open_python_data

    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (200, 5)).astype(np.float32)
    y = (x[:, 0] > 3).astype(np.int64)
    cfg = DataConfig(split_seed=4, loader_workers=0)
    ds = _Counted(x, y)
    assert isinstance(open_python_data(ds, cfg), DataSplits)  # small: in memory
    ds.reads = 0
    st = open_python_data(ds, cfg.model_copy(update={"memory_budget_mb": 0.001}))
    assert isinstance(st, StreamSplits)
    # labels from .targets; the train items for the statistics, plus two probes (size, shape)
    assert ds.reads == st.sizes()["train"] + 2
    mem = splits_from_python((x, y), cfg)
    assert st.sizes() == mem.sizes() and st.input_shape == (5,) and not st.image
    torch.testing.assert_close(st.y_train, mem.y_train)
    torch.testing.assert_close(torch.cat([b for b, _ in st.val_batches(64)]), mem.x_val, rtol=1e-4, atol=1e-4)
    plain = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))  # no targets: read once
    streamed = open_python_data(plain, cfg.model_copy(update={"memory_budget_mb": 0.001}))
    torch.testing.assert_close(streamed.y_train, mem.y_train)


def test_the_engine_trains_on_streamed_data_like_on_the_same_data_in_memory(tmp_path: Path) -> None:
    """``fit`` on an image folder over the memory budget: the same split sizes as in memory, one
    counted test read, deterministic per seed, and it learns (the batches come from a DataLoader,
    so the batch order - not the split - differs from the in-memory path)."""
    from reglab.config import RunConfig
    from reglab.training.engine import fit

    root = _folder(tmp_path / "imgs", n=90)
    base = {"path": str(root), "split_seed": 2, "loader_workers": 0}
    run = {"hidden": [16], "epochs": 6, "batch_size": 16, "lr": 0.1, "device": "cpu", "swa": {"start": 0.5}}
    streamed_cfg = RunConfig(data=DataConfig.model_validate({**base, "memory_budget_mb": 0.001})).override(run)
    memory_cfg = RunConfig(data=DataConfig.model_validate(base)).override(run)
    data = open_data(streamed_cfg.data)
    assert isinstance(data, StreamSplits)
    a = fit(streamed_cfg, data)
    assert data.test.reads == 1 and a.status == "completed"
    b = fit(streamed_cfg)  # loads (and streams) the data itself
    assert a.history == [dict(h, time=a.history[i]["time"]) for i, h in enumerate(b.history)]
    assert a.final == b.final
    in_memory = fit(memory_cfg)
    assert a.info["data_sizes"] == in_memory.info["data_sizes"]
    assert a.final["val_acc"] >= 0.8 and a.history[-1]["train_loss"] < a.history[0]["train_loss"]


def _truncate(path: Path) -> None:
    """Cut a PNG in half: its header still reads, its pixels do not decode."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_file_that_fails_to_decode_in_a_loader_worker_is_one_line_naming_it(tmp_path: Path) -> None:
    """torch re-raises a worker's exception with the worker's whole traceback as its message (18
    lines); the streamed batches say reglab's one line, naming the file."""
    from reglab.errors import DataError

    root = _folder(tmp_path / "imgs")
    st = open_data(_cfg(root, memory_budget_mb=0.001, loader_workers=1))
    assert isinstance(st, StreamSplits)
    bad = root / "c0" / "000.png"  # image 0: in one of the splits
    _truncate(bad)
    with pytest.raises(DataError) as err:
        for idx in (st.train_idx, st.val_idx, st.test_idx):
            list(st.batches(idx, 8))
    assert str(err.value) == (
        f"{bad}: cannot read as an image (OSError: image file is truncated); remove or replace the file"
    )


def test_the_pre_flight_check_decodes_every_image(tmp_path: Path) -> None:
    """Reading the headers (all that indexing does) passes a truncated PNG; the check decodes it."""
    from reglab.data import check_source
    from reglab.data.images import index_folder
    from reglab.errors import DataError

    root = _folder(tmp_path / "imgs")
    _truncate(root / "c1" / "040.png")
    index_folder(_cfg(root))  # the header is fine
    with pytest.raises(DataError, match=r"040\.png: cannot read as an image \(OSError: image file is truncated\)"):
        check_source(_cfg(root))
