"""Shared by the fused recurrent layers' tests."""

import keras
import pytest

_MODES = {
    False: "eager",
    True: "compiled",
    "xla": "xla",  # unknown batch and time, as the exports trace
    "xla_static": "xla-static-time",  # known time, as `fit` traces fixed-size batches
}


@pytest.fixture(
    params=[False, True]
    + (["xla", "xla_static"] if keras.backend.backend() == "tensorflow" else []),
    ids=_MODES.get,
)
def compile_mode(request):
    """How a gradient test runs the layer: eagerly, compiled, or (TensorFlow) XLA.

    The backward loops scan their sequences apart when the number of steps is
    static (eager, JAX, `xla_static`) and concatenated when it is not.
    """
    return request.param
