"""Keras' own `group_normalization_test.py`, run with kerasdl's `GroupNormalization`."""

from _swap import allow, keras_test_module

from kerasdl import layers as kerasdl_layers

keras_tests = keras_test_module(
    "layers.normalization.group_normalization_test",
    "layers",
    GroupNormalization=kerasdl_layers.GroupNormalization,
)


class TestKerasGroupNormalization(keras_tests.GroupNormalizationTest):
    test_groups_not_a_multiple_of_dim_error = allow(
        "same ValueError, worded the right way round: Keras says the number of "
        "groups 'must be a multiple of the number of channels', while the "
        "channels must be a multiple of the groups; kerasdl says '`groups` must "
        "divide the number of channels (4, ...). Received: groups=3'"
    )(keras_tests.GroupNormalizationTest.test_groups_not_a_multiple_of_dim_error)
