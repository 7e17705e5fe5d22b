"""Money as integer minor units of an ISO 4217 currency (249.50 MXN is 24950).

Babel (CLDR data) knows each currency's minor-unit exponent (JPY 0, MXN 2, KWD 3), so no service
keeps its own table and nothing goes through a float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, list_currencies

_CURRENCIES = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """Whether `code` is an ISO 4217 currency code (upper-case)."""
    return code in _CURRENCIES


def exponent(currency: str) -> int:
    """Digits after the decimal point of the currency's minor unit."""
    return int(get_currency_precision(currency.upper()))


def to_major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def to_minor(amount: str | Decimal, currency: str) -> int:
    """Parse an amount in major units ("249.5") to minor units (24950). ValueError when it is
    not a number or has more decimals than the currency has."""
    try:
        value = Decimal(amount) if isinstance(amount, str) else amount
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount: {amount!r}")
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(minor)


def format_money(minor: int, currency: str, locale: str = "en") -> str:
    """Human text for messages, e.g. 24950 MXN -> "MX$249.50" (locale "en")."""
    currency = currency.upper()
    return str(format_currency(to_major(minor, currency), currency, locale=locale))
