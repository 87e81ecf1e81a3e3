"""Type checks of configuration values against annotations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytest

from cmt_geo.errors import ConfigError
from cmt_geo.validation import coerce, describe, is_integer, is_number, reject_unknown, validate_fields


@dataclass(frozen=True)
class _Options:
    name: str = "a"
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    color: tuple[int, int, int] = (0, 0, 0)
    kind: Literal["x", "y"] = "x"
    limit: float | None = None

    def __post_init__(self) -> None:
        validate_fields(self, "option")


def test_values_are_normalized() -> None:
    options = _Options(count=np.int64(3), rate=2, sizes=[4, 5], color=[1, 2, 3], limit=np.float32(0.5))  # type: ignore[arg-type]
    assert options == _Options(count=3, rate=2.0, sizes=(4, 5), color=(1, 2, 3), limit=0.5)
    assert type(options.count) is int
    assert type(options.rate) is float
    assert type(options.limit) is float


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", 1, "option name must be a string, got 1"),
        ("count", 1.5, "option count must be an integer, got 1.5"),
        ("count", True, "option count must be an integer, got True"),
        ("rate", math.nan, "option rate must be a finite number, got nan"),
        ("rate", "0.5", "option rate must be a finite number, got '0.5'"),
        ("flag", 1, "option flag must be true or false, got 1"),
        ("sizes", "12", "option sizes must be a sequence of integers, got '12'"),
        ("sizes", (1, 2.5), r"option sizes must be a sequence of integers, got \(1, 2.5\)"),
        ("color", (1, 2), r"option color must be a sequence of 3 integers, got \(1, 2\)"),
        ("kind", "z", r"option kind must be one of \('x', 'y'\), got 'z'"),
        ("limit", math.inf, "option limit must be a finite number or None, got inf"),
    ],
)
def test_a_wrong_value_names_the_field_the_value_and_what_fits(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _Options(**{field: value})


def test_numbers() -> None:
    assert is_integer(np.uint8(3))
    assert not is_integer(True)
    assert not is_integer(3.0)
    assert is_number(3)
    assert is_number(np.float16(0.5))
    assert not is_number(math.nan)
    assert not is_number(False)


def test_describe_and_coerce() -> None:
    assert describe(tuple[tuple[int, int, int], ...]) == "a sequence of sequences of 3 integers"
    assert describe(str | None) == "a string or None"
    assert coerce("x", [[1, 2, 3]], tuple[tuple[int, int, int], ...]) == ((1, 2, 3),)


def test_unknown_keys_are_listed_with_the_valid_ones() -> None:
    reject_unknown("option(s)", ["a"], ["a", "b"])
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['c'\]; valid options: \['a', 'b'\]"):
        reject_unknown("option(s)", ["a", "c"], ["b", "a"])
