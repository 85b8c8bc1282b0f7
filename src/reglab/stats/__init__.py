"""Statistics for comparing arms over seeds: intervals, paired tests, probability of improvement."""

from reglab.stats.compare import (
    PairedComparison,
    Summary,
    describe,
    describe_in_range,
    holm,
    paired_compare,
    probability_of_improvement,
)

__all__ = [
    "PairedComparison",
    "Summary",
    "describe",
    "describe_in_range",
    "holm",
    "paired_compare",
    "probability_of_improvement",
]
