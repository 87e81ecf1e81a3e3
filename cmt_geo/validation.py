"""Type checks of configuration values against dataclass annotations, with one-line ConfigErrors (torch-free).

A frozen dataclass calls `validate_fields(self, "model option")` in `__post_init__`; every field is checked
against its annotation and normalized: lists become tuples, integers given for floats become floats, numpy
scalars become Python numbers. Supported annotations: bool, int, float (finite), str, `Literal[...]`,
`tuple[X, ...]`, `tuple[X, Y, Z]`, `X | None` and classes (checked with isinstance).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from cmt_geo.errors import ConfigError

_NAMES = {
    bool: ("true or false", "true/false values"),
    int: ("an integer", "integers"),
    float: ("a finite number", "finite numbers"),
    str: ("a string", "strings"),
}
_INVALID = object()


def is_integer(value: object) -> bool:
    """Whether `value` is an integer (numpy integers count, bools do not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """Whether `value` is a finite real number (integers and numpy scalars count, bools do not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def reject_unknown(what: str, keys: Iterable[str], valid: Iterable[str]) -> None:
    """Raise a ConfigError naming the keys that are not valid, and listing the valid ones.

    Args:
        what: what the keys are, e.g. "model option(s)".
        keys: the keys given.
        valid: the keys accepted.
    """
    unknown = sorted(set(keys) - set(valid), key=str)
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; valid options: {sorted(valid)}")


def describe(hint: Any, plural: bool = False) -> str:
    """What an annotation accepts, in words: "an integer", "a sequence of strings", "one of ('a', 'b')"."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return f"one of {args}"
    if origin in (Union, types.UnionType):
        return " or ".join("None" if arg is type(None) else describe(arg, plural) for arg in args)
    if origin is tuple:
        items = describe(args[0], plural=True) if args[-1] is Ellipsis else f"{len(args)} {describe(args[0], True)}"
        return f"sequences of {items}" if plural else f"a sequence of {items}"
    if hint in _NAMES:
        return _NAMES[hint][plural]
    return f"{hint.__name__} objects" if plural else f"a {hint.__name__}"


def coerce(name: str, value: Any, hint: Any) -> Any:
    """`value` checked against the annotation `hint` and normalized (list -> tuple, int -> float, numpy -> Python).

    Raises:
        ConfigError: the value does not fit; the message names `name`, the value and what is accepted.
    """
    converted = _convert(value, hint)
    if converted is _INVALID:
        raise ConfigError(f"{name} must be {describe(hint)}, got {value!r}")
    return converted


def validate_fields(instance: Any, what: str) -> None:
    """Check and normalize every field of a (frozen) dataclass instance in place.

    Args:
        instance: the dataclass instance, typically `self` in `__post_init__`.
        what: how errors name a field, e.g. "model option" gives "model option dropout must be ...".

    Raises:
        ConfigError: a field whose value does not fit its annotation.
    """
    hints = get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = coerce(f"{what} {field.name}", getattr(instance, field.name), hints[field.name])
        object.__setattr__(instance, field.name, value)


def _convert(value: Any, hint: Any) -> Any:
    """`value` normalized to `hint`, or `_INVALID`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value if isinstance(value, str | int) and value in args else _INVALID
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        converted = (_convert(value, arg) for arg in args if arg is not type(None))
        return next((item for item in converted if item is not _INVALID), _INVALID)
    if origin is tuple:
        return _convert_tuple(value, args)
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        return int(value) if is_integer(value) else _INVALID
    if hint is float:
        return float(value) if is_number(value) else _INVALID
    return value if isinstance(value, hint) else _INVALID


def _convert_tuple(value: Any, args: tuple[Any, ...]) -> Any:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return _INVALID
    hints = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
    if len(hints) != len(value):
        return _INVALID
    items = tuple(_convert(item, hint) for item, hint in zip(value, hints, strict=True))
    return _INVALID if any(item is _INVALID for item in items) else items
