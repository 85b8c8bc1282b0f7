"""reglab: which regularization, how strong, with which training hyperparameters - and proof.

Import cost is kept low: heavy modules (torch, optuna) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reglab.seeding import seed_everything

__version__ = "0.1.0"

__all__ = ["__version__", "seed_everything"]


def __getattr__(name: str) -> Any:
    if name == "seed_everything":  # loaded on first use: `import reglab` stays cheap
        from reglab.seeding import seed_everything

        return seed_everything
    raise AttributeError(f"module 'reglab' has no attribute {name!r}")
