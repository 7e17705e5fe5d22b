from decimal import Decimal

import pytest

from parlay_kit.money import exponent, format_money, is_currency, to_major, to_minor


def test_minor_units_follow_the_currency_exponent() -> None:
    assert to_minor("249.5", "MXN") == 24950
    assert to_minor("1000", "JPY") == 1000
    assert to_minor("1.234", "KWD") == 1234
    assert to_major(24950, "MXN") == Decimal("249.50")
    assert (exponent("JPY"), exponent("USD"), exponent("BHD")) == (0, 2, 3)


@pytest.mark.parametrize("bad", ["1.005", "abc", "NaN", "Infinity"])
def test_amounts_that_are_not_money_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        to_minor(bad, "USD")


def test_format_and_codes() -> None:
    assert format_money(24950, "MXN") == "MX$249.50"
    assert format_money(1000, "jpy") == "¥1,000"
    assert is_currency("EUR") and not is_currency("XXY") and not is_currency("eur")
