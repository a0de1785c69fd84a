"""Order statistics, one definition for every percentile cmat states."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of `values` (sorted or not; at least one): share 0.5 is
    the median, 0.9 the value 90 % of them do not exceed."""
    ordered = sorted(values)
    rank = math.ceil(round(share * len(ordered), 9))  # 0.95 * 20 is 19.000000000000004
    return ordered[min(max(rank - 1, 0), len(ordered) - 1)]
