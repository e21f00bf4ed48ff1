"""Parsing of the number fields in the forms.

A field accepts exactly what Python's ``int()`` / ``float()`` accept (so ``3e-4``,
``1e+1``, `` 12 `` and ``1_000`` are fine); an integer field also takes a float literal
with an integral value (``1e3`` steps is 1000 steps). Everything else raises
``FieldError`` with a one-line message naming the field and showing what was typed, so
the form can show it before anything starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


class FieldError(ValueError):
    """A form field holds a value that cannot be used; the message is for the user."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_int(
    field: str, text: str, low: int | None = 1, high: int | None = None
) -> int:
    """Parse an integer field, checking ``low <= value <= high``."""
    try:
        value = int(text)
    except ValueError:
        value = _integral_float(field, text)
    _check_range(field, value, low, high)
    return value


def _integral_float(field: str, text: str) -> int:
    try:
        number = float(text)
    except ValueError:
        raise FieldError(field, f"{field}: {text.strip()!r} is not a number") from None
    if not math.isfinite(number) or number != int(number):
        raise FieldError(field, f"{field}: {text.strip()!r} is not a whole number")
    return int(number)


def parse_float(
    field: str,
    text: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Parse a float field; ``low_open`` makes the lower bound exclusive (``> low``)."""
    try:
        value = float(text)
    except ValueError:
        raise FieldError(field, f"{field}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise FieldError(field, f"{field}: {text.strip()!r} is not a finite number")
    if low is not None and low_open and value <= low:
        raise FieldError(field, f"{field}: must be greater than {low:g}, got {value:g}")
    _check_range(field, value, None if low_open else low, high)
    return value


def parse_optional_int(field: str, text: str, low: int | None = 1) -> int | None:
    """An integer field that may be left empty (meaning 'no limit' / 'default')."""
    return None if not text.strip() else parse_int(field, text, low)


def _check_range(field: str, value: float, low: float | None, high: float | None):
    if low is not None and value < low:
        raise FieldError(field, f"{field}: must be at least {low:g}, got {value:g}")
    if high is not None and value > high:
        raise FieldError(field, f"{field}: must be at most {high:g}, got {value:g}")


@dataclass
class FormResult:
    """Parsed values of a form, or the errors keyed by field."""

    values: dict[str, object]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_form(texts: Mapping[str, str], parsers: Mapping[str, object]) -> FormResult:
    """Run each field's parser (a callable of the text); collect values and errors."""
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name, parser in parsers.items():
        try:
            values[name] = parser(texts.get(name, ""))
        except FieldError as e:
            errors[name] = str(e)
    return FormResult(values, errors)
