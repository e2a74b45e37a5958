"""In-process: the fast `serve` path computes exactly what the signature computes."""

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
