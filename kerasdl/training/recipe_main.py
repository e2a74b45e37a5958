"""A recipe's command line: flags over its config dataclass, one run, exit status.

Every recipe family's `main` (built by `recipe_main`) is the same few steps: generate one flag per config field
(`kerasdl.training.add_config_arguments`), add `--workdir`, resolve the config,
run `train_and_evaluate(config, workdir, recipe=...)`, print what the run reports,
and map the known failures to exit statuses (`kerasdl.training.run_with_exit_codes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any


def recipe_main(
    train_and_evaluate: Callable[..., Any],
    report: Callable[[Any], None],
    *,
    description: str | None = None,
    workdir_help: str = "logs and curves",
    skip: Sequence[str] = (),
) -> Callable[..., int]:
    """Returns a recipe family's `main(defaults, argv=None, *, recipe, prog=None) -> int`.

    The returned `main` parses one flag per field of `defaults` (plus `--workdir`),
    runs `train_and_evaluate(config, workdir, recipe=recipe)`, passes its result to
    `report`, and returns the exit status: 0 on success, else the status
    `kerasdl.training.run_with_exit_codes` maps the failure to (2 for bad usage,
    whether from a flag or raised as `UsageError`).

    Args:
        train_and_evaluate: the recipe family's `train_and_evaluate(config, workdir,
            recipe=...)`.
        report: prints the run's result (test figures, export path).
        description: `--help`'s description; `{recipe}` is replaced by the
            recipe's name. Defaults to `None` ("Train, evaluate and export the
            <recipe> recipe.").
        workdir_help: what the workdir holds, for `--workdir`'s help. Defaults to
            `"logs and curves"`.
        skip: config fields that get no flag (fixed by the recipe). Defaults to `()`.

    The returned `main` takes `defaults`, the recipe's config dataclass instance
    whose values are the flags' defaults (so `--help` shows this recipe's own
    values); `argv`, the flags (`None`: `sys.argv[1:]`); `recipe`, the recipe's
    name (the default workdir is `runs/<recipe>/<dataset>`); and `prog`, the
    program name in usage and error lines (`None`: `python -m recipes.<recipe>`).

    Example:

    ```python
    def report(result):
        print(f"Test accuracy: {result.test_accuracy:.4f}")

    main = recipe_main(train_and_evaluate, report, skip=("model",))
    status = main(CONFIG, ["--epochs", "1"], recipe="rnn_intent")
    ```
    """
    description = description or "Train, evaluate and export the {recipe} recipe."

    def main(
        defaults, argv: Sequence[str] | None = None, *, recipe: str, prog=None
    ) -> int:
        from kerasdl.training.config_flags import (
            add_config_arguments,
            config_from_args,
        )
        from kerasdl.training.runner import (
            ArgumentParser,
            configure_logging,
            run_with_exit_codes,
        )

        parser = ArgumentParser(
            prog=prog or f"python -m recipes.{recipe}",
            description=description.format(recipe=recipe),
        )
        parser.add_argument(
            "--workdir",
            default=None,
            help=f"{workdir_help} (default: runs/{recipe}/<dataset>)",
        )
        add_config_arguments(parser, defaults, skip=tuple(skip))
        args = parser.parse_args(argv)
        config = config_from_args(defaults, args)
        workdir = args.workdir or os.path.join("runs", recipe, config.dataset)
        configure_logging()

        def run():
            report(train_and_evaluate(config, workdir, recipe=recipe))

        return run_with_exit_codes(run)

    return main


def fit_verbose(value: str) -> str | int:
    """A config's `verbose` string as `model.fit` takes it: `"auto"`, or 0, 1, 2."""
    return value if value == "auto" else int(value)
