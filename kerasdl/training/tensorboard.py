"""TensorBoard logging that degrades to a warning when TensorBoard is missing."""

from __future__ import annotations

import importlib.util
import logging

logger = logging.getLogger(__name__)


def tensorboard_callbacks(log_dir: str) -> list:
    """`[keras.callbacks.TensorBoard(log_dir)]`, or `[]` with a warning when the
    `tensorboard` package (which TensorFlow >= 2.21 no longer installs) is absent."""
    import keras

    if importlib.util.find_spec("tensorboard") is None:
        logger.warning(
            "tensorboard is not installed; no TensorBoard logs "
            "(pip install tensorboard). The CSV log is still written."
        )
        return []
    return [keras.callbacks.TensorBoard(log_dir)]
