"""The training engine shared by every recipe: strategies, seeding, resumable
checkpoints, learning curves and the model card.

A recipe (see `recipes/image_classification.py`, `recipes/text_classification.py`,
`recipes/translation.py`) reads as a story and calls these helpers, its command line
being `recipe_main`; `kerasdl.export` writes the trained model out.
"""

from kerasdl.training import exit_codes  # noqa: F401
from kerasdl.training.attention_map import plot_attention  # noqa: F401
from kerasdl.training.bleu import (
    BleuScore,  # noqa: F401
    corpus_bleu,  # noqa: F401
)
from kerasdl.training.config_flags import (
    add_config_arguments,  # noqa: F401
    config_from_args,  # noqa: F401
)
from kerasdl.training.exit_codes import UsageError  # noqa: F401
from kerasdl.training.fit_run import (
    FitRun,  # noqa: F401
    fit_with_early_stopping,  # noqa: F401
)
from kerasdl.training.learning_curves import (
    plot_learning_curves,  # noqa: F401
    read_history,  # noqa: F401
)
from kerasdl.training.model_card import (
    build_model_card,  # noqa: F401
    device_description,  # noqa: F401
)
from kerasdl.training.recipe_main import (
    fit_verbose,  # noqa: F401
    recipe_main,  # noqa: F401
)
from kerasdl.training.reproducibility import (
    resumable_stream,  # noqa: F401
    set_seed,  # noqa: F401
)
from kerasdl.training.runner import (
    ArgumentParser,  # noqa: F401
    configure_logging,  # noqa: F401
    run_with_exit_codes,  # noqa: F401
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
