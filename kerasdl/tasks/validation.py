"""Checks a task config before any work starts: one line naming the flag on a bad value.

The rules live beside each field, in its dataclass metadata, so a new config field
states its own range where it is declared:

    epochs: int = field(default=30, metadata={"min": 1, "max": 100_000})

Metadata keys:

    min / max        inclusive bounds of a number
    above / below    exclusive bounds of a number
    choices          the allowed values (also the flag's argparse choices)
    one_of           the allowed values, checked here only: a collection, or a
                     "module:NAME" string naming one (a dict: its keys), imported
                     when a config is checked, so declaring the field stays cheap
                     (`config_fields.dataset`, `config_fields.model`)
    path             "output": a non-empty directory path that is not a file;
                     "input": an existing directory, unless `download` is set

Every float must be finite, every int an integer. `None` is always accepted (an
optional field left unset).
"""

from __future__ import annotations

import dataclasses
import importlib
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


def allowed_values(rules) -> tuple | None:
    """The values `one_of` (or `choices`) allows, resolving a "module:NAME" string."""
    names = rules.get("one_of", rules.get("choices"))
    if isinstance(names, str):
        module, _, attribute = names.partition(":")
        names = getattr(importlib.import_module(module), attribute)
    return None if names is None else tuple(names)


def _check_field(field, annotation, value, config) -> None:
    flag = flag_name(field.name)
    rules = field.metadata
    kind = _number_kind(annotation)
    if kind is not None:
        _check_number(flag, kind, value, rules)
    allowed = allowed_values(rules)
    if allowed is not None and str(value) not in map(str, allowed):
        raise UsageError(
            f"{flag} must be one of {', '.join(map(str, allowed))}; got {value!r}"
        )
    path_rule = rules.get("path")
    if path_rule and isinstance(value, str):
        _check_path(flag, path_rule, value, config)


def _check_number(flag, kind, value, rules) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{flag} must be a number; got {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number; got {value!r}")
    if kind is int and not float(value).is_integer():
        raise UsageError(f"{flag} must be an integer; got {value!r}")
    low, low_closed = _bound(rules, "min", "above")
    high, high_closed = _bound(rules, "max", "below")
    too_low = low is not None and (value < low if low_closed else value <= low)
    too_high = high is not None and (value > high if high_closed else value >= high)
    if too_low or too_high:
        what = "an integer" if kind is int else "a number"
        raise UsageError(
            f"{flag} must be {what} {_interval(low, low_closed, high, high_closed)}; "
            f"got {_number(value)}"
        )


def _check_path(flag, rule, value, config) -> None:
    if not value.strip():
        raise UsageError(f"{flag} must be a directory path; got an empty string")
    if rule == "output" and os.path.isfile(value):
        raise UsageError(f"{flag} {value} is a file; expected a directory")
    if (
        rule == "input"
        and not os.path.isdir(value)
        and not getattr(config, "download", False)
    ):
        what = "is a file" if os.path.exists(value) else "does not exist"
        raise UsageError(
            f"{flag} {value} {what}; expected the directory that holds the "
            "dataset (or pass --download to fetch it there)"
        )


def _bound(rules, closed_key, open_key):
    """(bound, closed) from the metadata; (None, True) when there is none."""
    if rules.get(closed_key) is not None:
        return rules[closed_key], True
    if rules.get(open_key) is not None:
        return rules[open_key], False
    return None, True


def _interval(low, low_closed, high, high_closed) -> str:
    """`in [1, 100000]`, `in (0, 10]`, `>= 1`, `< 1`."""
    if low is not None and high is not None:
        return (
            f"in {'[' if low_closed else '('}{_number(low)}, "
            f"{_number(high)}{']' if high_closed else ')'}"
        )
    if low is not None:
        return f"{'>=' if low_closed else '>'} {_number(low)}"
    return f"{'<=' if high_closed else '<'} {_number(high)}"


def _number(value) -> str:
    """`3`, `-1` (not `-1.0`), `0.5`, `1e-05`, `4294967295`: as a user would type it."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _number_kind(annotation):
    """`int` or `float` for `int`, `float`, `int | None`...; else `None`."""
    args = typing.get_args(annotation) or (annotation,)
    for kind in (int, float):
        if kind in args or annotation is kind:
            return kind
    return None
