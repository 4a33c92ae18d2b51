"""Statistics of the architecture study: a mean over seeds, a difference of two runs.

A configuration's accuracy is estimated by its mean over seeds, with a 95% t
interval (:func:`estimate`). Two configurations are compared seed by seed
(:func:`paired_difference`): runs of one seed trained on the same images and
were scored on the same validation images, so the difference of a seed cancels
what those images favour, and the t interval of the differences uses their
spread across seeds. Each seed draws its own class-balanced validation images,
so the binomial noise of scoring them is part of that spread, not added to it.
:func:`verdict` is the experiments chapter's rule: one configuration beats
another when the interval of the difference excludes zero; otherwise the two
are indistinguishable. Standard library only (and :mod:`hw2._checks`).
"""
from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

from hw2 import _checks

__all__ = ["t_quantile", "Estimate", "estimate", "paired_difference", "verdict",
           "binomial_se"]



def _t_density(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
    c = math.exp(log_c) / math.sqrt(df * math.pi)
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


def _t_cdf(x: float, df: int, steps: int = 2000) -> float:
    """P(T <= x) for x >= 0: 1/2 plus Simpson's rule over the density on [0, x]."""
    h = x / steps
    inner = sum((4 if i % 2 else 2) * _t_density(i * h, df) for i in range(1, steps))
    return 0.5 + h / 3 * (_t_density(0.0, df) + inner + _t_density(x, df))


# typed: a cached t_quantile(1) must not answer t_quantile(True) unchecked.
@functools.lru_cache(maxsize=None, typed=True)
def t_quantile(df: int, p: float = 0.975) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom.

    ``t_quantile(2) = 4.303``: a 95% interval of a mean of 3 seeds is the mean
    ± 4.303 standard errors. Found by bisection on the t CDF.

    Raises:
        ValueError: ``df`` not a positive integer, or ``p`` not in (0.5, 1).
    """
    df = _checks.positive_int("df", df, owner="t_quantile")
    if not (_checks.is_real(p) and 0.5 < p < 1):
        _checks.fail("p", "a number in (0.5, 1)", p, owner="t_quantile")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        low, high = high, 2 * high
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95% interval.

    Attributes:
        mean: the mean of the values.
        half: half the width of the 95% t interval (NaN for fewer than 2 values).
        n: how many values (seeds).
        sd: their standard deviation (NaN for fewer than 2).
    """

    mean: float
    half: float
    n: int
    sd: float

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    def text(self, digits: int = 1) -> str:
        """``48.2 ± 1.3`` (``48.2`` when there is no interval)."""
        if math.isnan(self.half):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f}"

    def __str__(self) -> str:
        return f"{self.text()} (n={self.n})"


def estimate(values) -> Estimate:
    """The mean of ``values`` (one per seed) with its 95% t interval."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("estimate needs at least one value")
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(mean, math.nan, n, math.nan)
    sd = statistics.stdev(values)
    return Estimate(mean, t_quantile(n - 1) * sd / math.sqrt(n), n, sd)


def paired_difference(a: dict[int, float], b: dict[int, float]) -> Estimate:
    """``a − b`` seed by seed over the seeds both have, as an :class:`Estimate`.

    Args:
        a, b: ``{seed: value}`` of two configurations.

    Raises:
        ValueError: when they share no seed.
    """
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"no seed in common: {sorted(a)} and {sorted(b)}")
    return estimate(a[s] - b[s] for s in common)


def verdict(diff: Estimate) -> str:
    """The chapter's rule for a difference ``a − b`` (:func:`paired_difference`).

    ``'higher'`` when its 95% interval lies above zero, ``'lower'`` when below,
    else ``'indistinguishable'`` (also with fewer than two seeds: no interval).
    """
    if diff.n < 2 or math.isnan(diff.half):
        return "indistinguishable"
    if diff.low > 0:
        return "higher"
    if diff.high < 0:
        return "lower"
    return "indistinguishable"


def binomial_se(accuracy: float, n: int) -> float:
    """The standard error (points) of an accuracy in percent scored on ``n`` images."""
    p = accuracy / 100
    return 100 * math.sqrt(p * (1 - p) / n)
