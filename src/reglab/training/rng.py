"""The global RNG, for what torch offers no generator argument for (module initialization, dropout).

A run's own draws (batch order, augmentation, mixup) use a ``torch.Generator`` of its own; the rest
happens inside :func:`seeded_global_rng`, which seeds the global generators for the run and restores
the caller's state afterwards, so training never disturbs (nor depends on) the caller's RNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded_global_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed the CPU generator (and ``device``'s, for an accelerator) with ``seed`` inside the block;
    restore their previous states on exit. Seeding equals ``torch.manual_seed(seed)`` for these
    generators, so results are the same, but other devices' generators are left alone."""
    if device is None or device.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:
        fork = torch.random.fork_rng(devices=[device], device_type=device.type)
    with fork:
        torch.default_generator.manual_seed(seed)
        if device is not None and device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        elif device is not None and device.type != "cpu":
            torch.get_device_module(device.type).manual_seed(seed)
        yield
