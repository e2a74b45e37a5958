"""Test utilities shared by kerasdl's own tests and by users' layer tests."""

from kerasdl.testing.compiled import compiled  # noqa: F401
from kerasdl.testing.layer_test_case import run_layer_test  # noqa: F401
