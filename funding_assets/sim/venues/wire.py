"""JSON text of whole columns: a page of history rows built without a Python object per row.

A history page is thousands of rows of the same shape (a premium candle, a sample), so its
JSON text is assembled column by column: each column is a byte matrix with one row per
page row, ``0`` bytes standing for nothing (numbers have different lengths), and the page is
the matrices side by side with the ``0`` bytes dropped. The text is exactly what
``json.dumps(..., separators=(",", ":"))`` writes for the same rows: integers in decimal,
strings quoted, and decimals as the venue's own formatting of each float gives them
(checked: a value off the venue's decimal grid is formatted one by one by that function).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import orjson

#: A column of text: ``(rows, width)`` bytes, ``0`` where a row's text is shorter.
Text = np.ndarray

_DIGITS = 19  # an int64 has at most 19 digits
_POWERS = 10 ** np.arange(_DIGITS - 1, -1, -1, dtype=np.int64)
_LARGEST_EXACT = 2**53  # integers a float holds exactly


@lru_cache(maxsize=256)
def literal(text: str, rows: int) -> Text:
    """The same ASCII ``text`` on every row (read-only; pages repeat their sizes)."""
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (rows, len(text)))


def json_string(text: str, rows: int) -> Text:
    """The same string on every row, as a JSON string literal."""
    return literal(orjson.dumps(text).decode(), rows)


def integers(values: np.ndarray) -> Text:
    """Decimal text of integers (a ``-`` before negative ones), as ``str(int)`` writes them."""
    values = np.asarray(values, dtype=np.int64)
    magnitude = np.abs(values)
    largest = int(magnitude.max()) if magnitude.size else 0
    powers = _POWERS[_DIGITS - len(str(largest)) :]  # as many places as the longest number
    digits = (magnitude[:, None] // powers) % 10
    shown = (magnitude[:, None] >= powers) | (powers == 1)  # no leading zeros; 0 is "0"
    text = np.where(shown, digits + ord("0"), 0).astype(np.uint8)
    if not (values < 0).any():
        return text
    sign = np.where(values < 0, ord("-"), 0).astype(np.uint8)[:, None]
    return np.hstack([sign, text])


def decimals(values: np.ndarray, grid: int, shown: int, one: Callable[[float], str]) -> Text:
    """Decimal text of floats with ``shown`` places, for floats on a grid of ``grid`` places.

    ``one`` is the venue's own text of one float (``f"{x:.8f}"`` and the like), which this
    matches: a float that is exactly ``units / 10**grid`` prints as those units with the
    point ``grid`` places from the right, then ``shown - grid`` zeros (``-`` for any float
    with its sign bit set, ``-0.0`` included, as ``format`` writes it). Any other value makes
    the whole column go through ``one``.
    """
    if not 1 <= grid <= shown:
        raise ValueError(f"decimals: expected 1 <= grid <= shown, got grid {grid}, shown {shown}")
    values = np.asarray(values, dtype=np.float64)
    scale = 10**grid
    units = np.rint(values * scale)
    if not (np.all(np.abs(units) < _LARGEST_EXACT) and np.array_equal(units / scale, values)):
        return strings([one(v) for v in values.tolist()])
    magnitude = np.abs(units).astype(np.int64)
    fraction = ((magnitude % scale)[:, None] // _POWERS[_DIGITS - grid :]) % 10 + ord("0")
    sign = np.where(np.signbit(values), ord("-"), 0).astype(np.uint8)[:, None]
    rows = values.size
    return np.hstack(
        [
            sign,
            integers(magnitude // scale),
            literal(".", rows),
            fraction.astype(np.uint8),
            literal("0" * (shown - grid), rows),
        ]
    )


def strings(texts: Sequence[str]) -> Text:
    """ASCII texts, one per row."""
    if not texts:
        return np.zeros((0, 0), dtype=np.uint8)
    array = np.array(texts, dtype=np.bytes_)
    return array.view(np.uint8).reshape(len(texts), array.itemsize)


def quoted_decimals(columns: Sequence[np.ndarray], grid: int, shown: int, one: Callable[[float], str]) -> list[Text]:
    """:func:`quoted` :func:`decimals` of several columns, each distinct array formatted once
    (a 1-minute candle's open, high, low and close are one array of samples)."""
    texts: dict[int, Text] = {}
    for column in columns:
        if id(column) not in texts:
            texts[id(column)] = quoted(decimals(column, grid, shown, one))
    return [texts[id(column)] for column in columns]


def quoted(text: Text) -> Text:
    """A column of ASCII text (digits, signs, points) as JSON strings."""
    quote = literal('"', text.shape[0])
    return np.hstack([quote, text, quote])


def array_of_rows(columns: Sequence[Text], rows: int, open_row: str = "[", close_row: str = "]") -> bytes:
    """The JSON array whose rows are ``open_row`` + ``columns`` side by side + ``close_row``.

    ``columns`` already hold their separators (:func:`literal`), so a row's text is just
    their concatenation.
    """
    if rows == 0:
        return b"[]"
    page = np.hstack([literal(open_row, rows), *columns, literal(close_row + ",", rows)])
    text = page[page != 0].tobytes()
    return b"[" + text[:-1] + b"]"
