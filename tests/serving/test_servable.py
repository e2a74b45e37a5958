"""In-process: the fast `serve` path computes exactly what the signature computes."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import export_dense, export_recipe, export_text

from kerasdl.serving.servable import LoadError, Servable


@pytest.mark.parametrize("export", [export_dense, export_recipe, export_text])
def test_fast_path_matches_signature(tmp_path, export):
    export(str(tmp_path / "1"))
    servable = Servable.load(str(tmp_path / "1"), "m", 1)
    signature = servable.signatures["serving_default"]
    assert (
        signature.fast_function is not None
    )  # Keras export and tf.Module `serve` both
    _, input_order, output_keys = signature.fast_function
    assert sorted(input_order) == sorted(signature.inputs)
    assert sorted(output_keys) == sorted(signature.outputs)
    rng = np.random.default_rng(0)
    inputs = {}
    for key, info in signature.inputs.items():
        shape = tuple(3 if d is None else d for d in info.shape)
        if info.numpy_dtype == object:
            inputs[key] = np.array([b"ab", b"", b"xyz"], dtype=object)
        else:
            inputs[key] = rng.normal(size=shape).astype(info.numpy_dtype)
    fast, slow = signature.run(inputs), signature.run_signature(inputs)
    assert set(fast) == set(slow) == set(signature.outputs)
    for key in slow:
        assert fast[key].dtype == slow[key].dtype
        np.testing.assert_array_equal(fast[key], slow[key])


# `servable._flat_caller` calls a loaded function's graph through TensorFlow
# internals (430 -> 320 us per LeNet call, docs/serving.md "Performance"), with the
# public call as fallback. These are the TensorFlow versions it was checked on: a
# new TensorFlow fails here until the internal path is checked again (and this
# tuple extended) or dropped.
INTERNAL_CALL_CHECKED_ON = ("2.21.",)


def test_internal_call_path_is_taken_on_the_pinned_tensorflow(tmp_path):
    assert tf.__version__.startswith(INTERNAL_CALL_CHECKED_ON), (
        f"TensorFlow {tf.__version__}: check servable._flat_caller's internal call "
        f"(checked on {INTERNAL_CALL_CHECKED_ON}) and extend the tuple, or drop it"
    )
    export_dense(str(tmp_path / "1"))
    signature = Servable.load(str(tmp_path / "1"), "m", 1).signatures["serving_default"]
    caller = signature.fast_function[0]
    assert caller.__name__ == "call", "the internal path was not taken"
    inputs = {
        key: np.ones(tuple(2 if d is None else d for d in info.shape), "float32")
        for key, info in signature.inputs.items()
    }
    fast, slow = signature.run(inputs), signature.run_signature(inputs)
    for key in slow:
        np.testing.assert_array_equal(fast[key], slow[key])


def test_missing_saved_model_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="saved_model.pb"):
        Servable.load(str(tmp_path), "m", 1)


TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")


@pytest.mark.parametrize(
    "model, signatures, expected",
    [
        ("saved_model_half_plus_two_2_versions", 6, [2.5, 3.0]),
        (
            "saved_model_half_plus_three",
            2,
            [3.5, 4.0],
        ),  # TF 1.0: tf.saved_model.load fails
        ("saved_model_half_plus_two_tf2_cpu", 6, [2.5, 3.0]),  # fingerprint producer 1
    ],
)
def test_tf_serving_testdata_models_load(model, signatures, expected):
    servable = Servable.load(os.path.join(TESTDATA, model, "00000123"), model, 123)
    assert len(servable.signatures) == signatures
    outputs = servable.signatures["serving_default"].run(
        {"x": np.float32([[1.0], [2.0]])}
    )
    np.testing.assert_allclose(next(iter(outputs.values())).ravel(), expected)


def test_tf1_signatures_take_any_shape_their_graph_takes():
    path = os.path.join(TESTDATA, "saved_model_half_plus_two_2_versions", "00000123")
    signature = Servable.load(path, "m", 123).signatures["serving_default"]
    outputs = signature.run(
        {"x": np.float32([[1.0, 2.0], [3.0, 4.0]])}
    )  # declared [-1,1]
    np.testing.assert_array_equal(outputs["y"], [[2.5, 3.0], [3.5, 4.0]])


def _recipe_export(tmp_path):
    """The recipes' classifier export: `serving_default` adds `class_id` to `serve`."""
    import keras

    from kerasdl.export import export_saved_model

    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(flat))
    return export_saved_model(
        model, str(tmp_path), input_shape=(8, 8, 1), input_dtype="float32"
    ).path


def test_signature_that_is_not_serve_gets_the_flat_call(tmp_path):
    servable = Servable.load(_recipe_export(tmp_path), "m", 1)
    signature = servable.signatures["serving_default"]
    assert sorted(signature.outputs) == ["class_id", "probabilities"]
    assert signature.fast_function is not None
    inputs = {"images": np.random.default_rng(0).uniform(0, 16, (5, 8, 8, 1))}
    fast, slow = signature.run(inputs), signature.run_signature(inputs)
    for key in slow:
        assert fast[key].dtype == slow[key].dtype
        np.testing.assert_array_equal(fast[key], slow[key])


def test_undeclared_shape_takes_the_checked_public_call(tmp_path):
    # The flat call skips the function's own shape checks; a shape the signature
    # does not declare must still be refused, naming both shapes.
    from kerasdl.serving.codec import RequestError

    servable = Servable.load(_recipe_export(tmp_path), "m", 1)
    signature = servable.signatures["serving_default"]
    with pytest.raises(RequestError, match=r"declares shape \[-1,8,8,1\].*\[2,8,4,1\]"):
        signature.run({"images": np.zeros((2, 8, 4, 1), "float32")})


def test_undeclared_shape_is_left_to_the_graph_as_by_the_public_call(tmp_path):
    # As in TF Serving, the graph decides which shapes it takes: an elementwise
    # graph answers a (2, 3) batch for a signature of (-1, 4). Such a request
    # takes the public call, so it gets exactly what the signature computes.
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.f = tf.function(
        lambda x: {"y": x * module.scale},
        input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")],
    )
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.f})
    signature = Servable.load(path, "m", 1).signatures["serving_default"]
    assert signature.fast_function is not None
    for shape in [(2, 4), (2, 3)]:
        x = np.ones(shape, "float32")
        np.testing.assert_array_equal(signature.run({"x": x})["y"], 2 * x)
        np.testing.assert_array_equal(signature.run_signature({"x": x})["y"], 2 * x)
