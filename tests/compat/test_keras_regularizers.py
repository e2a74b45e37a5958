"""Keras' own `regularizers_test.py`, run with kerasdl's `L1`, `L2`, `L1L2`."""

from kerasdl import regularizers as kerasdl_regularizers

from _swap import keras_test_module

keras_tests = keras_test_module(
    "regularizers.regularizers_test",
    "regularizers",
    L1=kerasdl_regularizers.L1,
    L2=kerasdl_regularizers.L2,
    L1L2=kerasdl_regularizers.L1L2,
    get=kerasdl_regularizers.get,
)


class TestKerasRegularizers(keras_tests.RegularizersTest):
    pass
