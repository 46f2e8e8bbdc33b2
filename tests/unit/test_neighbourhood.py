"""Neighbourhoods, the keys read-ahead hints by location are kept under."""

from __future__ import annotations

from domain.identity import NEIGHBOURHOOD_DEG, neighbourhood


def test_a_square_of_a_hundredth_of_a_degree_per_kind_of_command() -> None:
    square = neighbourhood(31.2304, 121.4737, "scan")
    assert neighbourhood(31.2309, 121.4731, "scan") == square  # a street away
    assert neighbourhood(31.2400, 121.4737, "scan") != square  # the square north
    assert neighbourhood(31.2304, 121.4800, "scan") != square  # the square east
    assert neighbourhood(31.2304, 121.4737, "order") != square  # kinds apart
    # squares are floored, so they do not double in size around zero
    assert neighbourhood(-0.001, 10.0, "scan") != neighbourhood(0.001, 10.0, "scan")
    assert neighbourhood(-0.001, 10.0, "scan") == neighbourhood(-0.009, 10.0, "scan")
    assert NEIGHBOURHOOD_DEG == 0.01
