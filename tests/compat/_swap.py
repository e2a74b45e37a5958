"""Runs Keras' own test files against kerasdl's classes.

The `keras` wheel installs its test files beside its sources
(`keras/src/layers/normalization/batch_normalization_test.py`, ...). Each of
those modules reaches the class under test through a module-level name
(`layers.BatchNormalization`, `regularizers.L2`, `callbacks.EarlyStopping`).
`keras_test_module()` imports such a module from the installed package and
rebinds that name, in that module only, to a namespace where the classes under
test are kerasdl's and everything else is Keras' own. Nothing of Keras' test
code is copied into this project; the test classes are subclassed in our
`test_keras_*.py` files so that pytest collects them there, and the allow-list
of deliberate differences is one `allow()` call per test method, with its
reason.
"""

import importlib
import types

import keras
import pytest

# The allow-list is written against this version's test files.
KERAS_VERSION = "3.15.1"


class _Swapped(types.ModuleType):
    """A module whose attributes are `base`'s, except the `overrides`."""

    def __init__(self, base, overrides):
        super().__init__(base.__name__)
        self._base = base
        self._overrides = dict(overrides)

    def __getattr__(self, name):
        overrides = self.__dict__.get("_overrides", {})
        if name in overrides:
            return overrides[name]
        return getattr(self.__dict__["_base"], name)


def keras_test_module(module_name, attribute, **classes):
    """Imports `keras.src.<module_name>` with `attribute` swapped for kerasdl's.

    Args:
        module_name: dotted path under `keras.src`, e.g.
            `"layers.normalization.batch_normalization_test"`.
        attribute: the module-level name the tests reach the classes through,
            e.g. `"layers"`.
        **classes: the names to replace in that namespace and their kerasdl
            classes, e.g. `BatchNormalization=kerasdl.layers.BatchNormalization`.

    Returns:
        The imported Keras test module, patched.
    """
    if keras.version() != KERAS_VERSION:
        pytest.skip(
            f"the compatibility allow-list is written for Keras {KERAS_VERSION}; "
            f"installed: {keras.version()}",
            allow_module_level=True,
        )
    module = importlib.import_module(f"keras.src.{module_name}")
    base = getattr(module, attribute)
    if isinstance(base, _Swapped):
        base = base._base
    setattr(module, attribute, _Swapped(base, classes))
    return module


def allow(reason):
    """Marks one of Keras' test methods as a documented, deliberate difference.

    Use as `test_x = allow("why")(KerasTest.test_x)` in the subclass body: the
    test is skipped with `reason`, which `pytest -rs` lists.
    """

    def decorate(method):
        def skipped(self, *args, **kwargs):
            pytest.skip(f"deliberate difference from Keras: {reason}")

        skipped.__name__ = method.__name__
        skipped.__doc__ = reason
        return skipped

    return decorate
