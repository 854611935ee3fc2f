"""Each statistic of the outcome report against values computed independently: plain NumPy formulas
written out here, and published or tabulated figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm, t

from ivr_cbt.report import stats

# A small fixed dataset: changes in pain (follow-up minus baseline) in two arms.
ARM = np.array([-3, -2, -2, -1, 0, -4, -3, -1], dtype=float)
REF = np.array([-1, 0, 1, -2, 0, -1], dtype=float)
Z = 1.959963984540054  # the standard normal's 97.5% quantile


def by_hand_t_interval(x: np.ndarray) -> tuple[float, float]:
    n = x.size
    mean = x.sum() / n
    sd = math.sqrt(((x - mean) ** 2).sum() / (n - 1))
    half = t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def by_hand_wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return centre - half, centre + half


def test_the_t_quantile_used_by_hand_matches_the_printed_table():
    assert t.ppf(0.975, 4) == pytest.approx(2.7764, abs=5e-5)
    assert t.ppf(0.975, 7) == pytest.approx(2.3646, abs=5e-5)
    assert norm.ppf(0.975) == pytest.approx(Z)


def test_the_mean_change_interval_is_student_t_on_n_minus_one_degrees_of_freedom():
    result = stats.mean_ci(ARM)
    assert result.n == 8
    assert result.mean == pytest.approx(-2.0)
    assert result.sd == pytest.approx(math.sqrt(12 / 7))  # squared deviations 1+0+0+1+4+4+1+1
    # -2 -+ 2.36462 * sqrt(12/7) / sqrt(8) = -2 -+ 1.09461
    assert result.ci == pytest.approx((-3.09461, -0.90539), abs=1e-4)
    assert result.ci == pytest.approx(by_hand_t_interval(ARM))


def test_a_single_value_has_a_mean_but_no_interval_and_an_empty_arm_has_neither():
    assert stats.mean_ci([4]) == stats.Mean(1, 4.0, None, None)
    assert stats.mean_ci([]) == stats.Mean(0, None, None, None)


def test_values_that_are_all_equal_have_a_zero_width_interval():
    assert stats.mean_ci([-2, -2, -2]).ci == (-2.0, -2.0)


def test_the_difference_between_arms_is_welch_with_satterthwaite_degrees_of_freedom():
    result = stats.welch_difference(ARM, REF)
    va, vb = ARM.var(ddof=1) / ARM.size, REF.var(ddof=1) / REF.size
    df = (va + vb) ** 2 / (va**2 / (ARM.size - 1) + vb**2 / (REF.size - 1))
    half = t.ppf(0.975, df) * math.sqrt(va + vb)
    difference = ARM.mean() - REF.mean()
    assert result.difference == pytest.approx(-2.0 - (-0.5))
    assert result.df == pytest.approx(df)
    assert result.ci == pytest.approx((difference - half, difference + half))
    assert result.ci[0] < result.difference < result.ci[1]


def test_welch_has_no_interval_when_a_group_has_one_value_or_neither_group_varies():
    assert stats.welch_difference([1.0], REF) == stats.Difference(1.0 - REF.mean(), None, None)
    assert stats.welch_difference([1, 1], [2, 2]) == stats.Difference(-1.0, None, None)
    assert stats.welch_difference([], REF) == stats.Difference(None, None, None)


def test_welch_allows_one_group_without_spread():
    result = stats.welch_difference([1, 1, 1], [0, 1, 2])
    # all the variance is the second group's: se = 1 / sqrt(3), df = 2
    assert result.df == pytest.approx(2.0)
    assert result.ci == pytest.approx((-t.ppf(0.975, 2) / math.sqrt(3), t.ppf(0.975, 2) / math.sqrt(3)))


def test_hedges_g_is_the_pooled_standardised_difference_with_the_small_sample_correction():
    result = stats.hedges_g(ARM, REF)
    na, nb = ARM.size, REF.size
    pooled = math.sqrt(((na - 1) * ARM.var(ddof=1) + (nb - 1) * REF.var(ddof=1)) / (na + nb - 2))
    d = (ARM.mean() - REF.mean()) / pooled
    g = (1 - 3 / (4 * (na + nb) - 9)) * d
    se = math.sqrt((na + nb) / (na * nb) + g**2 / (2 * (na + nb - 3.94)))
    assert result.value == pytest.approx(g)
    assert result.value < 0  # the arm's pain fell more: negative favours the arm
    assert result.ci == pytest.approx((g - Z * se, g + Z * se))


def test_hedges_g_needs_spread_and_two_values_per_group():
    assert stats.hedges_g([1, 1], [1, 1]) == stats.Effect(None, None)
    assert stats.hedges_g([1], REF) == stats.Effect(None, None)


def test_the_wilson_interval_matches_newcombes_published_example():
    # Newcombe (1998), Stat Med 17:857, example 81/263: score interval 0.2553 to 0.3662.
    result = stats.wilson(81, 263)
    assert result.rate == pytest.approx(81 / 263)
    assert result.ci == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert result.ci == pytest.approx(by_hand_wilson(81, 263))


@pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 5), (3, 10), (32, 100)])
def test_the_wilson_interval_matches_its_formula_including_at_zero_and_all(k, n):
    result = stats.wilson(k, n)
    assert result.ci == pytest.approx(by_hand_wilson(k, n))
    assert 0 <= result.ci[0] <= k / n <= result.ci[1] <= 1


def test_a_proportion_of_nobody_has_no_rate():
    assert stats.wilson(0, 0) == stats.Proportion(0, 0, None, None)


def test_the_responder_difference_is_newcombes_hybrid_score_interval():
    # Newcombe (1998), Stat Med 17:873, example 56/70 vs 48/80: method 10 gives 0.0524 to 0.3339.
    a, b = stats.wilson(56, 70), stats.wilson(48, 80)
    result = stats.proportion_difference(a, b)
    assert result.value == pytest.approx(0.2)
    assert result.ci == pytest.approx((0.0524, 0.3339), abs=5e-5)
    (l1, u1), (l2, u2), p1, p2 = by_hand_wilson(56, 70), by_hand_wilson(48, 80), 56 / 70, 48 / 80
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    assert result.ci == pytest.approx((low, high))


@pytest.mark.parametrize(
    ("baseline", "followup", "responder"),
    [
        (10, 7, True),  # exactly 30%
        (10, 8, False),
        (3, 2, True),  # 33%
        (7, 5, False),  # 28.6%
        (7, 4, True),
        (1, 0, True),
        (4, 6, False),  # worse
        (5, 5, False),
    ],
)
def test_a_responder_has_at_least_thirty_percent_less_pain_than_at_baseline(baseline, followup, responder):
    assert stats.responders(np.array([baseline]), np.array([followup])) == (int(responder), 1)


def test_a_baseline_of_zero_is_neither_responder_nor_counted():
    assert stats.responders(np.array([0, 0, 10, 6]), np.array([0, 2, 5, 6])) == (1, 2)


@pytest.mark.parametrize(
    ("ci", "margin", "noninferior", "verdict"),
    [
        ((-0.67, 0.80), 1.0, True, "non-inferior"),  # COPES: IVR-CBT vs in-person
        ((-1.5, -0.2), 1.0, True, "non-inferior and superior"),
        ((-0.2, 1.3), 1.0, False, "inconclusive"),
        ((1.1, 2.0), 1.0, False, "inferior"),
        ((0.2, 1.0), 1.0, False, "inconclusive"),  # the bound must be strictly below the margin
        (None, 1.0, None, "not estimable"),
    ],
)
def test_non_inferiority_is_judged_on_the_upper_bound_of_arm_minus_reference(ci, margin, noninferior, verdict):
    assert stats.noninferior(ci, margin) is noninferior
    assert stats.verdict(ci, margin) == verdict
