"""Growth math on series whose answers are known in closed form."""

from __future__ import annotations

import math

import pytest

from colossim.errors import ColossimError
from colossim.fleet.dates import parse_date_arg, parse_period, quarters_between
from colossim.fleet.growth import GrowthPoint, cagr, doubling_time, growth


def test_doubling_every_year():
    qs = quarters_between("2020-Q1", "2023-Q1")
    g = growth([(q, 2 ** (i / 4)) for i, q in enumerate(qs)])
    assert g.cagr == pytest.approx(1.0)
    assert g.doubling_time_years == pytest.approx(1.0)
    assert g.years == 3
    assert all(p.qoq == pytest.approx(2 ** 0.25 - 1) for p in g.points[1:])
    assert [p.yoy for p in g.points[:4]] == [None] * 4
    assert all(p.yoy == pytest.approx(1.0) for p in g.points[4:])


def test_tripling_over_two_years():
    g = growth([("2022-Q4", 10.0), ("2024-Q4", 30.0)])
    assert g.cagr == pytest.approx(math.sqrt(3) - 1)
    assert g.doubling_time_years == pytest.approx(math.log(2) / math.log(math.sqrt(3)))
    assert g.points[1].qoq is None and g.points[1].yoy is None  # the quarter / year before is missing


def test_constant_series_has_zero_growth_and_never_doubles():
    g = growth([(q, 5.0) for q in quarters_between("2023-Q1", "2024-Q4")])
    assert g.cagr == 0 and g.doubling_time_years == math.inf
    assert all(p.qoq == 0 for p in g.points[1:]) and all(p.yoy == 0 for p in g.points[4:])


def test_shrinking_series_and_edge_cases():
    g = growth([("2023-Q1", 8.0), ("2024-Q1", 4.0)])
    assert g.cagr == pytest.approx(-0.5) and g.doubling_time_years is None
    assert growth([("2024-Q1", 3.0)]).cagr is None  # no time elapsed
    assert growth([]).points == ()
    assert cagr(0, 10, 1) is None and doubling_time(None) is None
    assert doubling_time(1.0) == pytest.approx(1.0)


def test_unsorted_input_is_put_in_quarter_order():
    g = growth([("2025-Q1", 4.0), ("2024-Q1", 2.0)])
    assert (g.first_quarter, g.last_quarter, g.cagr) == ("2024-Q1", "2025-Q1", pytest.approx(1.0))


def test_bad_input():
    with pytest.raises(ColossimError, match=">= 0"):
        growth([("2024-Q1", -1.0)])
    with pytest.raises(ColossimError, match="not a date"):
        growth([("Q5 2024", 1.0)])
    # a quarter as people write it is read as the records write it
    assert growth([("Q1 2024", 1.0), ("2024Q2", 2.0)]).points[-1] == GrowthPoint("2024-Q2", 2.0, 1.0, None)


def test_periods():
    assert parse_period("2024-Q3").end == parse_period("2024-09").end
    assert parse_period("2024-H1").end == parse_period("2024-06").end
    assert parse_period("2024-q2").text == "2024-Q2"
    assert parse_period("2024-03").quarter == "2024-Q1"
    assert quarters_between("2024-Q3", "2025-Q2") == ["2024-Q3", "2024-Q4", "2025-Q1", "2025-Q2"]
    with pytest.raises(ValueError):
        parse_period("2024-Q5")


@pytest.mark.parametrize("text, label", [("2024Q3", "2024-Q3"), ("2024 q3", "2024-Q3"), ("Q3 2024", "2024-Q3"),
                                         ("q3-2024", "2024-Q3"), ("H2 2024", "2024-H2"), ("2024-09-30", "2024-09"),
                                         (" 2024-Q3 ", "2024-Q3")])
def test_a_user_s_date_may_take_the_forms_people_write(text, label):
    assert parse_date_arg(text).text == label


@pytest.mark.parametrize("text, message", [("2024-02-30", "day is out of range"), ("Q5 2024", "YYYY-MM-DD"),
                                           ("30/09/2024", "YYYY-Qn")])
def test_a_user_s_impossible_date_is_one_line_naming_the_forms(text, message):
    with pytest.raises(ColossimError, match=f"^'{text}' is not a date: .*{message}"):
        parse_date_arg(text)
