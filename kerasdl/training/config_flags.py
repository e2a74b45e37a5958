"""Command-line flags generated from a recipe's config dataclass.

Every field `learning_rate: float = 1e-3` becomes `--learning-rate FLOAT`; booleans
become `--flag/--no-flag`; `X | None` fields accept `none`; dict fields take JSON. The
recipe's own config supplies the defaults, so `--help` shows each recipe's values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing


def _base_type(annotation):
    """(type, optional) for `int`, `int | None`, `Optional[int]`, 'int | None'."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return (non_none[0] if len(non_none) == 1 else str), True
    if origin is not None:
        return origin, False
    return annotation, False


def _parser_for(kind, optional):
    def parse(text):
        if optional and text.lower() in ("none", "null", ""):
            return None
        if kind is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(
                    f"expected a JSON object, got {text!r}"
                )
            return value
        if kind in (tuple, list):
            return kind(int(v) for v in text.split(","))
        return kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse's error messages.
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, config, skip=()) -> None:
    """Adds one flag per field of the dataclass instance `config`."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(config, field.name)
        kind, optional = _base_type(hints[field.name])
        help_text = field.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(
                flag,
                dest=field.name,
                default=default,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
            continue
        choices = field.metadata.get("choices")
        parser.add_argument(
            flag,
            dest=field.name,
            default=default,
            type=_parser_for(kind, optional),
            choices=choices,
            metavar=(
                getattr(kind, "__name__", "VALUE").upper() if not choices else None
            ),
            help=f"{help_text} (default: {default!r})".strip(),
        )


def config_from_args(config, args: argparse.Namespace):
    """Returns a copy of `config` with the fields the parsed `args` carry."""
    names = {f.name for f in dataclasses.fields(config)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return dataclasses.replace(config, **values)
