"""Exit statuses of `kerasdl train` (and `python -m recipes.<name>`)."""

OK = 0
ERROR = 1  # An unexpected error (a traceback is printed).
USAGE = 2  # Bad flags or an unknown recipe (argparse's convention).
NON_FINITE_LOSS = 3  # The loss became NaN/inf: nothing exported, checkpoints kept.
DATASET_NOT_FOUND = 4  # The dataset is not on disk and cannot be downloaded.
INTERRUPTED = 130  # Ctrl-C; the last epoch-end checkpoint is kept for resuming.


class UsageError(Exception):
    """A mistake on the command line (unknown dataset, bad value): exit 2, one line."""
