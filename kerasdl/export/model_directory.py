"""Where a recipe's exported versions go: `<output>/<recipe>[-<dataset>]`."""

from __future__ import annotations

import os


def model_directory(
    output: str | os.PathLike,
    recipe: str,
    dataset: str,
    default_dataset: str | None = None,
) -> str:
    """Returns the base directory of a recipe's numbered SavedModel versions.

    A recipe trained on its default dataset exports to `<output>/<recipe>`; trained
    on another one, to `<output>/<recipe>-<dataset>`, so the two never share a
    version history.

    Args:
        output: the directory holding every model, e.g. `"saved_models"`.
        recipe: the recipe's name, e.g. `"rnn_intent"`.
        dataset: the dataset the run trained on.
        default_dataset: the recipe's own dataset. Defaults to `None` (`dataset`:
            no suffix).

    Raises:
        ValueError: if `recipe`, `dataset` or `default_dataset` is empty or is not
            a single path component (`"."`, `".."`, or contains a separator), which
            would put the versions outside their own directory.

    Example:

    >>> model_directory("saved_models", "rnn_intent", "sms_spam", "banking77")
    'saved_models/rnn_intent-sms_spam'
    """
    _check_component("recipe", recipe)
    _check_component("dataset", dataset)
    if default_dataset is not None:
        _check_component("default_dataset", default_dataset)
    default = dataset if default_dataset is None else default_dataset
    name = recipe if dataset == default else f"{recipe}-{dataset}"
    return os.path.join(output, name)


def _check_component(argument, value):
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if (
        not isinstance(value, str)
        or value in ("", ".", "..")
        or any(sep in value for sep in separators)
    ):
        raise ValueError(
            f"`{argument}` must be a non-empty name without path separators "
            f"(it becomes a directory name). Received: {argument}={value!r}"
        )
