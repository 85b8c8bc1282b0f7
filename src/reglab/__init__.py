"""reglab: which regularization, how strong, with which training hyperparameters - and proof.

Import cost is kept low: heavy modules (torch, optuna) load only when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
