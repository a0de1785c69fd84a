"""Amounts are shown one way everywhere: to the cent."""

from cmat.money import usd


def test_amounts_show_to_the_cent_and_a_fraction_of_a_cent_is_not_zero():
    assert usd(1234.5678) == "$1,234.57"
    assert usd(0) == "$0.00"
    assert usd(0.004) == "<$0.01"
    assert usd(0.005) == "$0.01"


def test_unpriced_requests_make_an_amount_a_lower_bound():
    assert usd(2.5, unpriced=3) == "$2.50+?"
    assert usd(0, unpriced=3) == "unpriced"
    assert usd(None) == "unpriced"
