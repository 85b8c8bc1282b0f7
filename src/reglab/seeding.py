"""``reglab.seed_everything``: one call that seeds every global generator a training script may
draw from, so the user's own code (``objective: {function: ...}``) is reproducible per seed."""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator, torch (CPU and every CUDA device) and,
    when it is installed and already imported, Keras - with the same ``seed``. reglab calls it
    before each run of your function; call it yourself in a script run outside reglab.

    It does not make nondeterministic kernels deterministic: see docs/own-training.md."""
    seed = int(seed)
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    if "torch" in sys.modules or _importable("torch"):
        import torch

        torch.manual_seed(seed)  # every device's generator, CUDA included
    keras = sys.modules.get("keras")  # only when the user's code uses Keras (importing it is slow)
    if keras is not None:
        with contextlib.suppress(Exception):
            keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def restored_global_rng() -> Iterator[None]:
    """Run the block and restore the caller's Python, NumPy and torch CPU generator states after
    it: a run in this process (``InProcessExecutor``) must not disturb the caller's RNG."""
    import numpy as np
    import torch

    py, npy = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
