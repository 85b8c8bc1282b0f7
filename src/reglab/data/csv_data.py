"""Tabular data from a user's CSV file (``data.name: csv:PATH``): see :mod:`reglab.data.tables`,
which reads CSV and Parquet the same way (this name is kept for existing imports)."""

from __future__ import annotations

from reglab.data.tables import load_csv_table as load_csv

__all__ = ["load_csv"]
