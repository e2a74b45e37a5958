"""A recipe's command line: one flag per config field, one run, one exit status.

    kerasdl train lenet --epochs 10        # = python -m kerasdl.recipes.lenet --epochs 10

Every field `learning_rate: float = 1e-3` of a task's config becomes
`--learning-rate FLOAT`; booleans become `--flag/--no-flag`; `X | None` fields
accept `none`; dict fields take JSON. The recipe's own config supplies the defaults,
so `--help` shows each recipe's values. `run_recipe` adds `--workdir` and
`--restart`, checks every value (`kerasdl.tasks.validation`) before any work starts,
runs the task and maps the ways a run can fail to one line and an exit status
(`kerasdl.tasks.exit_codes`).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import re
import sys
import traceback
import types
import typing
from collections.abc import Sequence

from kerasdl.tasks import exit_codes


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
        if optional and text.lower() in ("none", "null"):
            return None
        if optional and not text.strip():  # not a silent 'none'
            raise argparse.ArgumentTypeError("empty value (give one, or 'none')")
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


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line, with no usage dump."""

    def error(self, message):
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def run_recipe(
    task, defaults, argv: Sequence[str] | None = None, *, recipe: str, prog=None
) -> int:
    """Parses `argv` over `defaults`, runs `task.run(...)`; returns the exit status.

    Args:
        task: the task module (`kerasdl.tasks.image_classification`, ...): its
            `run(config, workdir, recipe=..., restart=...)`, `report(result)`,
            `DESCRIPTION` and `FIXED_FIELDS` (fields that get no flag).
        defaults: the recipe's config, the flags' defaults.
        argv: the flags. Defaults to `None` (`sys.argv[1:]`).
        recipe: the recipe's name; the default workdir is `runs/<recipe>/<dataset>`.
        prog: the program name in usage and error lines. Defaults to `None`
            (`python -m kerasdl.recipes.<recipe>`).

    Example:

    ```python
    from kerasdl.recipes import lenet
    from kerasdl.tasks import image_classification

    status = run_recipe(image_classification, lenet.CONFIG, ["--epochs", "1"],
                        recipe="lenet")
    ```
    """
    parser = ArgumentParser(
        prog=prog or f"python -m kerasdl.recipes.{recipe}",
        description=getattr(
            task, "DESCRIPTION", "Train, evaluate and export {recipe}."
        ).format(recipe=recipe),
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="checkpoints, logs and curves; rerun with the same workdir to resume "
        f"(default: runs/{recipe}/<dataset>)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the run in progress in --workdir and start afresh",
    )
    add_config_arguments(
        parser, defaults, skip=tuple(getattr(task, "FIXED_FIELDS", ()))
    )
    args = parser.parse_args(argv)
    config = config_from_args(defaults, args)
    workdir = args.workdir
    if workdir is None:
        workdir = os.path.join("runs", recipe, str(config.dataset))
    configure_logging()

    def run():  # The task's `run` checks `config` before any work.
        task.report(task.run(config, workdir, recipe=recipe, restart=args.restart))

    return run_with_exit_codes(run)


def run_with_exit_codes(function, *args, **kwargs) -> int:
    """Calls `function` and maps the ways a training run can fail to exit statuses.

    Known failures print one line to stderr, with no traceback: bad usage (2), a
    diverged loss (3), a missing dataset (4), a full disk (5), Ctrl-C (130), a failed
    export or an unwritable file (1). Anything else prints its traceback and
    returns 1.
    """
    from kerasdl.data import DatasetNotFoundError
    from kerasdl.export import ExportError
    from kerasdl.tasks.fit import TrainingDivergedError

    try:
        function(*args, **kwargs)
    except exit_codes.UsageError as error:
        return _fail(exit_codes.USAGE, f"error: {error}")
    except TrainingDivergedError as error:
        return _fail(exit_codes.NON_FINITE_LOSS, f"error: training diverged: {error}")
    except DatasetNotFoundError as error:
        return _fail(exit_codes.DATASET_NOT_FOUND, f"error: {error}")
    except ExportError as error:
        return _fail(
            exit_codes.ERROR,
            f"error: export failed: {error} The trained weights are kept: rerun the "
            "same command to evaluate and export again without retraining.",
        )
    except KeyboardInterrupt:
        return _fail(
            exit_codes.INTERRUPTED,
            "interrupted; run the same command again to resume from the last "
            "completed epoch.",
        )
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return _no_space(error.filename)
        if error.errno in (
            errno.EACCES,
            errno.EROFS,
            errno.EPERM,
            errno.ENOTDIR,
            errno.EISDIR,
            errno.ENOENT,
        ):
            return _fail(
                exit_codes.ERROR,
                f"error: cannot write {error.filename or 'a file'}: "
                f"{error.strerror or error}; everything finished before is kept: "
                "fix the path and rerun the same command.",
            )
        traceback.print_exc()
        return exit_codes.ERROR
    except Exception as error:  # noqa: BLE001 -- anything else: traceback, status 1.
        # TensorFlow's own writers (TensorBoard events, SavedModel) report a full
        # disk as a TensorFlow error, not an OSError.
        full = _NO_SPACE.search(str(error))
        if full:
            return _no_space(full.group(1))
        traceback.print_exc()
        return exit_codes.ERROR
    return exit_codes.OK


_NO_SPACE = re.compile(r"(\S+?)?;? No space left on device")


def _no_space(filename) -> int:
    return _fail(
        exit_codes.NO_SPACE,
        f"error: no space left on the device while writing {filename or 'a file'}; "
        "everything finished before is kept: free some space and rerun the same "
        "command.",
    )


def configure_logging(verbose: bool = True) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # TensorFlow logs through absl as well; its INFO lines ("Assets written to")
    # would otherwise print twice.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def _fail(code, message) -> int:
    sys.stdout.flush()
    print(message.replace("\n", " "), file=sys.stderr)
    return code
