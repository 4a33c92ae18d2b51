"""Argument checks shared by the package, with one message style.

Every check raises where the bad value enters, naming the argument and the
value: ``ValueError: batch_size must be a positive integer, got 0``. An
``owner`` (``"Linear"``, ``"RunConfig"``) is put in front when given.
Booleans are never integers here (``True`` is not a batch size), while NumPy
and torch integer scalars are. A check that takes ``error`` raises that
exception instead of ``ValueError``: the reader of a result file raises its
own (``ExperimentFileError``), with the file as the owner.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = [
    "FLOAT32_MAX",
    "is_int",
    "is_real",
    "fail",
    "positive_int",
    "non_negative_int",
    "positive_real",
    "real_in",
    "int_list",
    "number_list",
    "int_tuple",
    "one_of",
    "flag",
]


#: The largest finite float32: a learning rate or weight decay beyond it overflows
#: the float32 arithmetic of an optimizer step.
FLOAT32_MAX = 3.4028234663852886e38


def is_int(value: Any) -> bool:
    """An integer (Python, NumPy or 0-dim torch), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number (int or float), not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def fail(name: str, what: str, value: Any, owner: str | None = None,
         error: type[Exception] = ValueError):
    """Raise ``error`` saying that ``name`` must be ``what``, and what it was."""
    prefix = f"{owner}: " if owner else ""
    raise error(f"{prefix}{name} must be {what}, got {value!r}")


def _int_at_least(name, value, minimum, what, allow_none, owner, error):
    """``value`` as an int if it is an integer ≥ ``minimum`` (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not is_int(value) or value < minimum:
        fail(name, what + (" or None" if allow_none else ""), value, owner, error)
    return int(value)


def positive_int(name: str, value: Any, *, allow_none: bool = False,
                 owner: str | None = None,
                 error: type[Exception] = ValueError) -> int | None:
    """``value`` as an int if it is an integer ≥ 1 (or None when allowed)."""
    return _int_at_least(name, value, 1, "a positive integer", allow_none, owner,
                         error)


def non_negative_int(name: str, value: Any, *, allow_none: bool = False,
                     owner: str | None = None,
                     error: type[Exception] = ValueError) -> int | None:
    """``value`` as an int if it is an integer ≥ 0 (or None when allowed)."""
    return _int_at_least(name, value, 0, "a non-negative integer", allow_none, owner,
                         error)


def positive_real(name: str, value: Any, *, owner: str | None = None,
                  high: float = math.inf) -> float:
    """``value`` as a float if it is a finite number > 0 (and ≤ ``high``)."""
    if not is_real(value) or value <= 0 or value > high:
        bound = "" if high == math.inf else f" of at most {high:g}"
        fail(name, f"a positive number{bound}", value, owner)
    return float(value)


def real_in(name: str, value: Any, low: float, high: float, *, high_open: bool = True,
            owner: str | None = None,
            type_error: type[Exception] = ValueError) -> float:
    """``value`` as a float if ``low ≤ value < high`` (``≤ high``: ``high_open=False``).

    The message names the interval: ``momentum must be a number in [0, 1), got
    1.5``. A value that is not a real number raises ``type_error`` (the
    optimizers raise ``TypeError`` for it, configurations ``ValueError``).
    """
    bracket = ")" if high_open else "]"
    if not is_real(value) and not (isinstance(value, numbers.Real)
                                   and not isinstance(value, bool)):
        fail(name, f"a real number in [{low:g}, {high:g}{bracket}", value, owner,
             type_error)
    inside = (is_real(value) and low <= value
              and (value < high if high_open else value <= high))
    if not inside:
        fail(name, f"a number in [{low:g}, {high:g}{bracket}", value, owner)
    return float(value)


def int_list(name: str, values: Any, *, allow_empty: bool = False,
             owner: str | None = None,
             error: type[Exception] = ValueError) -> list[int]:
    """``values`` as a list of ints if it is a sequence of positive integers.

    The message names the entries that are not: ``channels must be a list of
    positive integers; bad entries: [-1]``.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        fail(name, "a list of positive integers", values, owner, error)
    values = list(values)
    prefix = f"{owner}: " if owner else ""
    if not values and not allow_empty:
        raise error(f"{prefix}{name} must not be empty (a list of positive "
                    f"integers)")
    bad = [v for v in values if not (is_int(v) and v > 0)]
    if bad:
        raise error(f"{prefix}{name} must be a list of positive integers; bad "
                    f"entries: {bad!r}")
    return [int(v) for v in values]


def number_list(name: str, values: Any, *, none_means: str | None = None,
                owner: str | None = None,
                error: type[Exception] = ValueError) -> list[float]:
    """``values`` as a list of floats if it is a sequence of numbers.

    Infinite numbers count (a loss that overflowed). With ``none_means``, None
    entries are allowed too, read as NaN, and the message says what they stand
    for: ``train_loss must be a list of numbers (null for a diverged value);
    bad entries: ['x']``.
    """
    what = "a list of numbers" + (f" ({none_means})" if none_means else "")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        fail(name, what, values, owner, error)

    def number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    bad = [v for v in values if not (number(v) or (none_means and v is None))]
    if bad:
        prefix = f"{owner}: " if owner else ""
        raise error(f"{prefix}{name} must be {what}; bad entries: {bad!r}")
    return [math.nan if v is None else float(v) for v in values]


def int_tuple(name: str, values: Any, length: int, what: str, *,
              owner: str | None = None) -> tuple[int, ...]:
    """``values`` as a tuple if it is ``length`` positive integers (``what``)."""
    if (isinstance(values, (str, bytes)) or not isinstance(values, Sequence)
            or len(values) != length or not all(is_int(v) and v > 0 for v in values)):
        fail(name, f"{what}: {length} positive integers", values, owner)
    return tuple(int(v) for v in values)


def one_of(name: str, value: Any, choices: Sequence[Any], *,
           owner: str | None = None) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        fail(name, f"one of {', '.join(map(repr, choices))}", value, owner)
    return value


def flag(name: str, value: Any, *, owner: str | None = None) -> bool:
    """``value`` if it is ``True`` or ``False``.

    Nothing else counts, not even 1 or the string ``'False'`` (which Python
    takes for true: a keyword given as text would silently switch a flag on).
    """
    if not isinstance(value, bool):
        fail(name, "true or false", value, owner)
    return value
