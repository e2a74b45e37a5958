"""Exit statuses of `kerasdl train` (and `python -m kerasdl.recipes.<name>`)."""

OK = 0
ERROR = 1  # An unexpected error (a traceback is printed), or a failed export.
USAGE = 2  # Bad flags, paths or an unknown recipe, a busy or mismatched workdir.
NON_FINITE_LOSS = 3  # The loss became NaN/inf: nothing exported, checkpoints kept.
DATASET_NOT_FOUND = 4  # The dataset is not on disk and cannot be downloaded.
NO_SPACE = 5  # A disk filled up: what was written before is kept; free space, rerun.
INTERRUPTED = 130  # Ctrl-C; the last epoch-end checkpoint is kept for resuming.


class UsageError(Exception):
    """A mistake on the command line (bad value, unusable path): exit 2, one line."""
