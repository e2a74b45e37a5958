"""model_directory: `<output>/<recipe>`, or `<output>/<recipe>-<dataset>` off-default."""

import doctest
import importlib
import os

import pytest

from kerasdl.export import model_directory


def test_default_dataset_has_no_suffix():
    path = model_directory("saved_models", "rnn_intent", "banking77", "banking77")

    assert path == os.path.join("saved_models", "rnn_intent")


def test_other_dataset_is_suffixed():
    path = model_directory("saved_models", "rnn_intent", "sms_spam", "banking77")

    assert path == os.path.join("saved_models", "rnn_intent-sms_spam")


def test_default_and_other_dataset_never_share_a_directory():
    default = model_directory("out", "lenet", "mnist", "mnist")
    other = model_directory("out", "lenet", "fashion_mnist", "mnist")

    assert default != other
    assert os.path.dirname(default) == os.path.dirname(other) == "out"


def test_no_default_dataset_means_no_suffix():
    path = model_directory("saved_models", "my_recipe", "custom_data")

    assert path == os.path.join("saved_models", "my_recipe")


def test_path_like_output_gives_a_string(tmp_path):
    path = model_directory(tmp_path, "lenet", "fashion_mnist", "mnist")

    assert isinstance(path, str)
    assert path == str(tmp_path / "lenet-fashion_mnist")


@pytest.mark.parametrize(
    "recipe, dataset, default, argument",
    [
        ("", "digits", None, "recipe"),
        ("lenet", "", "digits", "dataset"),
        ("..", "digits", None, "recipe"),
        ("lenet", "../../etc", "digits", "dataset"),
        ("a/b", "digits", None, "recipe"),
        ("lenet", "digits", ".", "default_dataset"),
        (None, "digits", None, "recipe"),
    ],
)
def test_names_that_are_not_one_directory_are_refused(
    recipe, dataset, default, argument
):
    with pytest.raises(ValueError, match=rf"`{argument}` must be a non-empty name"):
        model_directory("saved_models", recipe, dataset, default)


def test_docstring_example_holds():
    # `kerasdl.export.model_directory` is the function, so import the module by name.
    module = importlib.import_module("kerasdl.export.model_directory")
    result = doctest.testmod(module)

    assert result.attempted == 1
    assert result.failed == 0
