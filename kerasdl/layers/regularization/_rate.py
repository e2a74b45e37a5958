"""Argument checks shared by the dropout family."""

import math
import numbers


def validate_rate(rate):
    """Returns `rate` as a float after checking it lies in `[0, 1)`.

    A rate of 1 is refused: inverted dropout scales the kept units by
    `1 / (1 - rate)`, which has no value there, and a layer that drops
    everything is better written as zeros.
    """
    if (
        isinstance(rate, bool)
        or not isinstance(rate, numbers.Real)
        or not math.isfinite(rate)
        or not 0 <= rate < 1
    ):
        raise ValueError(
            "Invalid value for argument `rate`: expected a float in [0, 1) "
            f"(the fraction of units to drop). Received: rate={rate!r}"
        )
    return float(rate)
