"""Summaries and paired confidence intervals for the benchmark tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Return the mean, the sample standard deviation (0 for one value) and n."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": len(array)}


def paired_t_interval(
    values: Sequence[float], reference: Sequence[float], confidence: float = 0.95
) -> dict[str, Any]:
    """Return the mean of ``values - reference`` and its Student t-interval.

    The pairs are matched by position. With fewer than two pairs the interval is
    undefined and its bounds are None.

    Raises:
        ValueError: The two sequences differ in length or are empty.
    """
    if len(values) != len(reference) or not len(values):
        raise ValueError(
            f"paired samples need two equal, non-empty lengths, got {len(values)} "
            f"and {len(reference)}"
        )
    differences = np.asarray(values, dtype=float) - np.asarray(reference, dtype=float)
    n = len(differences)
    mean = float(differences.mean())
    result: dict[str, Any] = {
        "mean": mean,
        "n": n,
        "confidence": confidence,
        "low": None,
        "high": None,
        "std": None,
    }
    if n < 2:
        return result
    std = float(differences.std(ddof=1))
    half_width = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    result.update(std=std, low=mean - half_width, high=mean + half_width)
    return result
