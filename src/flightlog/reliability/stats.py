"""Rates with honest intervals.

Every rate Flightlog reports is a count of successes out of a count of trials, shown with a
95% **Wilson score interval** (Wilson 1927; Brown, Cai & DasGupta 2001, "Interval Estimation
for a Binomial Proportion", recommend it over the normal approximation, which collapses to a
zero-width interval at 0 or n successes). With no trials there is no rate: ``Rate.value`` is
None and the interval is the whole of [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``trials`` (0 <= successes <= trials).

    With ``trials == 0`` the interval is (0.0, 1.0): nothing is known.
    """
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"expected 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    n = float(trials)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = (z / (1 + z2 / n)) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True, slots=True)
class Rate:
    """``successes`` of ``trials``, with its 95% Wilson interval."""

    successes: int
    trials: int

    @property
    def value(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.successes, self.trials)

    @property
    def failures(self) -> int:
        return self.trials - self.successes

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "successes": self.successes,
            "trials": self.trials,
            "value": self.value,
            "low": lo,
            "high": hi,
        }


def pass_k(rate: Rate, k: int) -> dict[str, Any]:
    """pass^k: the chance that all of ``k`` independent runs succeed (``p**k``), with the
    interval's ends raised to the same power (a monotone map keeps the coverage)."""
    lo, hi = rate.interval
    value = rate.value
    return {
        "k": k,
        "value": None if value is None else value**k,
        "low": lo**k,
        "high": hi**k,
    }


def per_thousand(rate: Rate) -> dict[str, Any]:
    """Expected failures per 1,000 runs, and the upper bound from the interval's low end."""
    lo, hi = rate.interval
    value = rate.value
    return {
        "expected": None if value is None else 1000.0 * (1.0 - value),
        "low": 1000.0 * (1.0 - hi),
        "upper_bound": 1000.0 * (1.0 - lo),
    }
