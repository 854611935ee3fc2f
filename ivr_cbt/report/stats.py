"""The report's statistics: pure functions of numbers (no database, no rendering).

Every interval is two-sided at ``confidence`` (0.95 unless told). The estimators come from
statsmodels (t intervals, Welch, Wilson, Newcombe, Hedges' g) and SciPy (the normal quantile);
what this module adds is the choice of estimator and the rule for data too thin to estimate
from: such a statistic is ``None``, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import stats as scipy_stats
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

CONFIDENCE = 0.95
Interval = tuple[float, float]
Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Mean:
    n: int
    mean: float | None
    sd: float | None
    ci: Interval | None


@dataclass(frozen=True)
class Difference:
    """``a - b`` with its interval and Welch's degrees of freedom."""

    difference: float | None
    ci: Interval | None
    df: float | None


@dataclass(frozen=True)
class Effect:
    value: float | None
    ci: Interval | None


@dataclass(frozen=True)
class Proportion:
    count: int
    n: int
    rate: float | None
    ci: Interval | None


def _interval(low, high) -> Interval:
    return float(low), float(high)


def _alpha(confidence: float) -> float:
    return 1.0 - confidence


def mean_ci(values: Values, confidence: float = CONFIDENCE) -> Mean:
    """Mean with Student's t interval: mean +- t(1 - alpha/2, n - 1) * sd / sqrt(n).

    One value has a mean but no interval; values that are all equal have a zero-width one.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Mean(0, None, None, None)
    if x.size == 1:
        return Mean(1, float(x[0]), None, None)
    low, high = DescrStatsW(x).tconfint_mean(alpha=_alpha(confidence))
    return Mean(int(x.size), float(x.mean()), float(x.std(ddof=1)), _interval(low, high))


def welch_difference(a: Values, b: Values, confidence: float = CONFIDENCE) -> Difference:
    """Difference of means ``a - b`` with Welch's t interval (variances not assumed equal).

    Needs two values in each group and some spread in at least one (else Welch's degrees of
    freedom are undefined): otherwise the difference comes without an interval.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return Difference(None, None, None)
    difference = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return Difference(difference, None, None)
    compared = CompareMeans(DescrStatsW(x), DescrStatsW(y))
    low, high = compared.tconfint_diff(alpha=_alpha(confidence), usevar="unequal")
    _t, _p, df = compared.ttest_ind(usevar="unequal")
    return Difference(difference, _interval(low, high), float(df))


def hedges_g(a: Values, b: Values, confidence: float = CONFIDENCE) -> Effect:
    """Hedges' g for ``a - b`` with a normal-approximation interval.

    g = J * (mean_a - mean_b) / s_pooled, s_pooled^2 = ((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2),
    J = 1 - 3 / (4 (n_a + n_b) - 9); Var(g) = N / (n_a n_b) + g^2 / (2 (N - 3.94)), N = n_a + n_b
    (statsmodels' ``effectsize_smd``, after Borenstein 2009). Needs two values per group and s_pooled > 0.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return Effect(None, None)
    g, variance = effectsize_smd(x.mean(), x.std(ddof=1), x.size, y.mean(), y.std(ddof=1), y.size)
    z = scipy_stats.norm.ppf(1 - _alpha(confidence) / 2)
    half = z * np.sqrt(variance)
    return Effect(float(g), _interval(g - half, g + half))


def wilson(count: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """A proportion with its Wilson score interval (no continuity correction)."""
    if n == 0:
        return Proportion(0, 0, None, None)
    low, high = proportion_confint(count, n, alpha=_alpha(confidence), method="wilson")
    return Proportion(int(count), int(n), count / n, _interval(low, high))


def proportion_difference(a: Proportion, b: Proportion, confidence: float = CONFIDENCE) -> Effect:
    """Difference of proportions ``a - b`` with Newcombe's hybrid score interval (his method 10)."""
    if a.n == 0 or b.n == 0:
        return Effect(None, None)
    low, high = confint_proportions_2indep(
        a.count, a.n, b.count, b.n, method="newcomb", compare="diff", alpha=_alpha(confidence)
    )
    return Effect(a.count / a.n - b.count / b.n, _interval(low, high))


def responders(baseline: np.ndarray, followup: np.ndarray, threshold: str = "0.30") -> tuple[int, int]:
    """Count (responders, eligible): a responder's pain fell by at least ``threshold`` of its baseline.

    Exact in integers: (baseline - followup) * q >= p * baseline for threshold p/q, so a drop
    from 10 to 7 is a 30% responder. A baseline of 0 cannot fall by a share of itself: such
    patients are not eligible (neither numerator nor denominator).
    """
    share = Fraction(threshold)
    base, follow = np.asarray(baseline, dtype=np.int64), np.asarray(followup, dtype=np.int64)
    eligible = base > 0
    responded = (base - follow) * share.denominator >= share.numerator * base
    return int(np.count_nonzero(responded & eligible)), int(np.count_nonzero(eligible))


def noninferior(ci: Interval | None, margin: float) -> bool | None:
    """Non-inferior when the upper bound of (arm - reference) pain change is below ``+margin``.

    Higher pain is worse, so the arm is inferior by the margin if its change is ``margin``
    points less favourable (less negative) than the reference's. Unknown without an interval.
    """
    return None if ci is None else ci[1] < margin


def verdict(ci: Interval | None, margin: float) -> str:
    """Say in words where the interval of (arm - reference) lies against 0 and the margin."""
    if ci is None:
        return "not estimable"
    low, high = ci
    if high < 0:
        return "non-inferior and superior"
    if high < margin:
        return "non-inferior"
    if low > margin:
        return "inferior"
    return "inconclusive"
