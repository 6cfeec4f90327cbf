"""How Rho and Boros write rates and times, and their conversion to what we store.

Stored: rates as **annualised decimals** (0.036451 = 3.6451 % APR), times as naive UTC.

Rho (legacy, Arbitrum; the seed notebook's data):

- candle ``open``/``high``/``low``/``close``: integers, the annualised rate scaled by 1e16:
  ``364511439564712`` -> 0.0364511439564712 = 3.6451 % APR. Read as percent the integer is
  the rate x 1e14 (3.6451 % x 1e14); the figure is the future's ``currentFutureRate`` of the
  same moment, which fixes the scale;
- ``vAMMParams.currentFutureRate`` (and the other ``*Rate`` fields): ethers ``BigNumber``
  hex, the decimal APR scaled by 1e18 (a "wad"): ``0x81801f4f2e9dd9`` = 36451143956471257
  -> 0.036451... = 3.6451 % APR;
- ``termStart`` / ``termLength``: ``BigNumber`` hex, seconds: ``0x6812ab70`` = 1746054000 ->
  2025-04-30 23:00 UTC; maturity = ``termStart + termLength``;
- candle times: ISO-8601 UTC strings (``2025-05-01T00:00:00.000Z``).

A ``BigNumber`` comes as ethers v5 writes it to JSON (``{"type": "BigNumber", "hex": "0x.."}``,
older ``{"_hex": "0x..", "_isBigNumber": true}``), as a hex string, or as a decimal integer
or digit string (a BigInt serialised by hand).

Boros: APRs (``markApr``, ``midApr``, ``impliedApr``, ``floatingApr``, chart ``o/h/l/c/u``)
are already annualised decimals (0.07 = 7 % APR); ``maturity``, ``timestamp``,
``nextSettlementTime`` and chart ``ts`` are unix **seconds**.

Scaled integers are divided as Python integers: ``int / int`` is correctly rounded, so the
float is the nearest one to the exact quotient (a float product or a float of the integer
first could lose the last digits of a 17-digit value).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

#: Rho candle OHLC: annualised decimal x 1e16.
RHO_CANDLE_SCALE = 10**16
#: Rho on-chain rates (``currentFutureRate``, bounds): annualised decimal x 1e18.
WAD = 10**18
UNIX = dt.datetime(1970, 1, 1)
#: Plausible instants, [2015-01-01, 2100-01-01) in unix seconds: a value outside is in a
#: wrong unit (ms for s) or damaged.
PLAUSIBLE_S = (1_420_070_400, 4_102_444_800)

_HEX = re.compile(r"^-?0x[0-9a-fA-F]+$")
_DIGITS = re.compile(r"^-?\d+$")


def big_int(value: Any) -> int:
    """An integer from JSON: a ``BigNumber`` object, a hex or digit string, or an integer.

    ``ValueError`` for anything else (a boolean, a float, a decimal fraction, garbage).
    """
    if isinstance(value, dict):
        value = value.get("hex", value.get("_hex"))
        if not isinstance(value, str):  # a BigNumber object always carries hex text
            raise ValueError(f"expected a BigNumber with hex text, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _HEX.match(text):
            sign = -1 if text.startswith("-") else 1
            return sign * int(text.lstrip("-")[2:], 16)
        if _DIGITS.match(text):
            return int(text)
    raise ValueError(f"expected an integer (BigNumber, hex or digits), got {value!r}")


def rho_candle_apr(value: Any) -> float:
    """A Rho candle value (annualised rate x 1e16) -> annualised decimal."""
    return big_int(value) / RHO_CANDLE_SCALE


def wad_apr(value: Any) -> float:
    """A Rho on-chain rate (annualised decimal x 1e18, e.g. ``currentFutureRate``) -> decimal."""
    return big_int(value) / WAD


def rho_seconds(value: Any) -> int:
    """A Rho ``BigNumber`` of seconds (``termStart``, ``termLength``) as an int."""
    seconds = big_int(value)
    if seconds < 0:
        raise ValueError(f"negative seconds {value!r}")
    return seconds


def from_unix_s(seconds: int) -> dt.datetime:
    """Unix seconds (plausible, 2015..2100) -> naive UTC datetime."""
    if not PLAUSIBLE_S[0] <= seconds < PLAUSIBLE_S[1]:
        raise ValueError(f"unix time {seconds!r} s is outside 2015..2100 (milliseconds for seconds?)")
    return UNIX + dt.timedelta(seconds=seconds)


def unix_s(when: dt.datetime) -> int:
    """Naive-UTC (or aware) datetime -> whole unix seconds (floored)."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when - UNIX) // dt.timedelta(seconds=1)


def iso_utc(text: Any) -> dt.datetime:
    """An ISO-8601 date-time string (``Z`` or an offset; none = UTC) -> naive UTC, ms precision."""
    if not isinstance(text, str) or "T" not in text and " " not in text.strip():
        raise ValueError(f"expected an ISO-8601 date-time, got {text!r}")
    when = dt.datetime.fromisoformat(text.strip())
    if when.tzinfo is dt.UTC:  # "Z": already UTC
        when = when.replace(tzinfo=None)
    elif when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    if when.microsecond % 1000:
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    from_unix_s(unix_s(when))  # plausibility
    return when


def rfc3339(when: dt.datetime) -> str:
    """Naive-UTC datetime -> RFC 3339 text with ``Z`` (seconds, or ms when it has them)."""
    text = when.replace(tzinfo=None).isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text + "Z"


def unix_seconds(value: Any) -> dt.datetime:
    """A Boros time (unix seconds, a JSON integer or digit string) -> naive UTC."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return from_unix_s(big_int(value))


def _decimal(value: Any) -> Decimal:
    """A JSON number or decimal string as an exact finite :class:`Decimal`, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"rate {value!r} is not finite")
    return number


def decimal_apr(value: Any) -> float:
    """An annualised decimal APR as a JSON number or decimal string (Boros, Rho X)."""
    if type(value) is float and math.isfinite(value):
        return value  # float(Decimal(repr(x))) is x: repr gives back the same float
    return float(_decimal(value))


def percent_apr(value: Any) -> float:
    """An annualised rate in percent (a JSON number or decimal string) -> annualised decimal."""
    return float(_decimal(value) / 100)


def apr_to_rho_candle(apr: float) -> int:
    """Annualised decimal -> Rho's candle integer (x 1e16), rounded half-even."""
    return int((Decimal(repr(apr)) * RHO_CANDLE_SCALE).to_integral_value())


def apr_to_wad(apr: float) -> int:
    """Annualised decimal -> a 1e18-scaled integer, rounded half-even."""
    return int((Decimal(repr(apr)) * WAD).to_integral_value())


def big_number(value: int) -> dict:
    """An integer as ethers v5 writes a ``BigNumber`` to JSON."""
    return {"type": "BigNumber", "hex": hex(value) if value >= 0 else "-" + hex(-value)}
