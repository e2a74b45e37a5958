"""The training engine under every task: strategies, seeding, a resumable input
stream, synchronized batch normalization, TensorBoard logging.

The task pipelines that use it live in `kerasdl.tasks`; the callbacks in
`kerasdl.callbacks`.
"""

from kerasdl.training.cross_validation import (  # noqa: F401
    CrossValidationResult,
    cross_validate,
)
from kerasdl.training.reproducibility import (
    resumable_stream,  # noqa: F401
    set_seed,  # noqa: F401
)
from kerasdl.training.strategy import (
    STRATEGIES,  # noqa: F401
    get_strategy,  # noqa: F401
    is_chief,  # noqa: F401
)
from kerasdl.training.strategy import describe as describe_strategy  # noqa: F401
from kerasdl.training.synchronized_batch_norm import (  # noqa: F401
    synchronize_batch_norm,
)
from kerasdl.training.tensorboard import tensorboard_callbacks  # noqa: F401
