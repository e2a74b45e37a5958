"""The `kerasdl` command: train a recipe, list the recipes, serve an exported model.

    kerasdl train lenet --dataset digits --epochs 10  # = python -m kerasdl.recipes.lenet
    kerasdl list
    kerasdl serve ...                                    # see `kerasdl serve --help`

Also runnable as `python -m kerasdl`. Exit statuses: 0 success, 1 unexpected error,
2 bad usage (unknown recipe, bad flag or path, busy or mismatched workdir), 3 training
diverged (NaN/inf loss; nothing exported, last good checkpoint kept), 4 dataset not
found, 5 disk full (finished work kept), 130 interrupted. See
`kerasdl.tasks.exit_codes`.
"""

from __future__ import annotations

import sys

USAGE = """usage: kerasdl {train,list,study,serve} ...

  kerasdl train RECIPE [flags]   train, evaluate and export a recipe
                                 (kerasdl train RECIPE --help lists its flags)
  kerasdl list                   every recipe, its dataset and expected accuracy
  kerasdl study list | NAME      measure what the articles claim (kerasdl study list)
  kerasdl serve [flags]          serve exported SavedModels over HTTP and gRPC
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kerasdl` console script; returns the exit status."""
    from kerasdl.tasks import exit_codes

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return exit_codes.OK if argv else exit_codes.USAGE
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train(rest)
    if command == "list":
        return list_recipes(rest)
    if command == "serve":
        return serve(rest)
    if command == "study":
        from kerasdl.studies.command_line import main as study

        return study(rest)
    return _usage_error(
        f"unknown command {command!r}; expected train, list, study or serve"
    )


def train(argv: list[str]) -> int:
    from kerasdl.recipes import get_recipe
    from kerasdl.tasks import exit_codes

    if not argv:
        return _usage_error(
            "train needs a recipe name: kerasdl train RECIPE [flags] "
            "(kerasdl list shows the recipes)"
        )
    if argv[0] in ("-h", "--help"):
        print("usage: kerasdl train RECIPE [flags]   (kerasdl list shows the recipes)")
        return exit_codes.OK
    if argv[0].startswith("-"):
        return _usage_error(f"expected a recipe name before the flags, got {argv[0]!r}")
    try:
        recipe = get_recipe(argv[0])
    except ValueError as error:
        return _usage_error(str(error))
    module = recipe.load()
    return module.main(argv[1:], prog=f"kerasdl train {recipe.name}")


def list_recipes(argv: list[str]) -> int:
    from kerasdl.recipes import RECIPES

    if argv:
        return _usage_error(f"list takes no arguments, got {' '.join(argv)!r}")
    header = ("recipe", "dataset", "target (test)", "description")
    rows = [(r.name, r.dataset, _target(r), r.description) for r in RECIPES.values()]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    return 0


def _target(recipe) -> str:
    if recipe.target is None:
        return "not tuned yet"
    if recipe.metric == "bleu":
        return f"BLEU >= {recipe.target:g}"
    if recipe.metric == "perplexity":
        return f"validation perplexity <= {recipe.target:g}"
    return f"accuracy >= {recipe.target:.0%}"


def serve(argv: list[str]) -> int:
    """Delegates to `kerasdl.serving`, imported only now so `train` never needs it."""
    from kerasdl.tasks.command_line import ArgumentParser

    try:
        from kerasdl.serving import add_serve_arguments, run_from_args
    except ImportError as error:
        return _fail(1, f"kerasdl serve is unavailable: {error}")
    parser = ArgumentParser(
        prog="kerasdl serve", description="Serve exported SavedModels over HTTP."
    )
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    result = run_from_args(args)
    return int(result) if isinstance(result, int) else 0


def _usage_error(message: str) -> int:
    return _fail(2, f"kerasdl: error: {message}")


def _fail(code: int, message: str) -> int:
    print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
