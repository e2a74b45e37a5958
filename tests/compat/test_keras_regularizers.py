"""Keras' own `regularizers_test.py`, run with kerasdl's regularizers.

Every name the test file reaches through `regularizers.X` is kerasdl's:
`L1`, `L2`, `L1L2`, `OrthogonalRegularizer`, `Regularizer` (Keras' base
class, re-exported), `get`, `serialize`, `deserialize`. `ValidateFloatArgTest`
tests Keras' private helper `validate_float_arg`, which is imported directly
and has no kerasdl counterpart; it runs against Keras' own.
"""

from _swap import keras_test_module

from kerasdl import regularizers as kerasdl_regularizers

keras_tests = keras_test_module(
    "regularizers.regularizers_test",
    "regularizers",
    L1=kerasdl_regularizers.L1,
    L2=kerasdl_regularizers.L2,
    L1L2=kerasdl_regularizers.L1L2,
    OrthogonalRegularizer=kerasdl_regularizers.OrthogonalRegularizer,
    Regularizer=kerasdl_regularizers.Regularizer,
    get=kerasdl_regularizers.get,
    serialize=kerasdl_regularizers.serialize,
    deserialize=kerasdl_regularizers.deserialize,
)


class TestKerasRegularizers(keras_tests.RegularizersTest):
    pass
