"""Argument checks shared by the dropout family."""

import math
import numbers


def validate_rate(rate):
    """Returns `rate` as a float after checking it lies in `[0, 1]`.

    As in Keras, a rate of 1 is accepted: every unit is dropped and the
    layer outputs zeros in training (the `1 / (1 - rate)` scaling of the kept
    units never applies, as none are kept).
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(
            "Invalid type for argument `rate`: expected a float between 0 and 1 "
            "(the fraction of units to drop). "
            f"Received: rate={rate!r} of type {type(rate).__name__}"
        )
    if not math.isfinite(rate) or not 0 <= rate <= 1:
        raise ValueError(
            "Invalid value received for argument `rate`. Expected a float value "
            "between 0 and 1. It is the fraction of units to drop, 0 and 1 "
            f"included. Received: rate={rate!r}"
        )
    return float(rate)
