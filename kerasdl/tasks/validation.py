"""Checks a task config before any work starts: one line naming the flag on a bad value.

The rules live beside each field, in its dataclass metadata, so a new config field
states its own range where it is declared:

    epochs: int = field(default=30, metadata={"min": 1, "max": 100_000})

Metadata keys: `min` / `max` (inclusive bounds), `above` (exclusive lower bound),
`below` (exclusive upper bound), `path` (`"output"`: a non-empty directory path that
is not a file; `"input"`: an existing directory, unless `download` is set). Every
float must be finite. `choices` are checked by the flag parser.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import typing

from kerasdl.tasks.exit_codes import UsageError


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def validate(config) -> None:
    """Raises `UsageError` for the first field of `config` outside its rules."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        _check_field(field, hints[field.name], value, config)


def _check_field(field, annotation, value, config) -> None:
    flag = flag_name(field.name)
    rules = field.metadata
    kind = _number_kind(annotation)
    if kind is not None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"{flag} must be a number; got {value!r}")
        if kind is int and not float(value).is_integer():
            raise UsageError(f"{flag} must be an integer; got {value!r}")
        if not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number; got {value!r}")
        what = "an integer" if kind is int else "a number"
        for key, holds, word in (
            ("min", lambda v, b: v >= b, ">="),
            ("max", lambda v, b: v <= b, "<="),
            ("above", lambda v, b: v > b, ">"),
            ("below", lambda v, b: v < b, "<"),
        ):
            bound = rules.get(key)
            if bound is not None and not holds(value, bound):
                raise UsageError(
                    f"{flag} must be {what} {word} {bound:g}{_range(rules)}; "
                    f"got {value!r}"
                )
    path_rule = rules.get("path")
    if path_rule and isinstance(value, str):
        if not value.strip():
            raise UsageError(f"{flag} must be a directory path; got an empty string")
        if path_rule == "output" and os.path.isfile(value):
            raise UsageError(f"{flag} {value} is a file; expected a directory")
        if (
            path_rule == "input"
            and not os.path.isdir(value)
            and not getattr(config, "download", False)
        ):
            what = "is a file" if os.path.exists(value) else "does not exist"
            raise UsageError(
                f"{flag} {value} {what}; expected the directory that holds the "
                "dataset (or pass --download to fetch it there)"
            )


def _range(rules) -> str:
    low = rules.get("min", rules.get("above"))
    high = rules.get("max", rules.get("below"))
    if low is not None and high is not None:
        return f" (and within [{low:g}, {high:g}])"
    return ""


def _number_kind(annotation):
    """`int` or `float` for `int`, `float`, `int | None`...; else `None`."""
    args = typing.get_args(annotation) or (annotation,)
    for kind in (int, float):
        if kind in args or annotation is kind:
            return kind
    return None
