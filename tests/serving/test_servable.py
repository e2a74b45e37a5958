"""In-process: the fast `serve` path computes exactly what the signature computes."""

import os

import numpy as np
import pytest
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
