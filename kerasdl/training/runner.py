"""Running a recipe as a program: one-line errors and distinct exit statuses."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from kerasdl.training import exit_codes


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line, with no usage dump."""

    def error(self, message):
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def run_with_exit_codes(function, *args, **kwargs) -> int:
    """Calls `function` and maps the ways a training run can fail to exit statuses.

    Known failures print one line to stderr, with no traceback:
    bad usage (2), a diverged loss (3), a missing dataset (4), Ctrl-C (130).
    Anything else prints its traceback and returns 1.
    """
    from kerasdl.callbacks.terminate_on_non_finite_loss import NonFiniteLossError
    from kerasdl.export import ExportError

    dataset_not_found = _dataset_not_found_error()
    try:
        function(*args, **kwargs)
    except exit_codes.UsageError as error:
        return _fail(exit_codes.USAGE, f"error: {error}")
    except NonFiniteLossError as error:
        return _fail(
            exit_codes.NON_FINITE_LOSS,
            f"error: training diverged: {error} Stopped; the last good checkpoint "
            "is kept and nothing was exported.",
        )
    except dataset_not_found as error:
        return _fail(exit_codes.DATASET_NOT_FOUND, f"error: {error}")
    except ExportError as error:
        return _fail(exit_codes.ERROR, f"error: export failed: {error}")
    except KeyboardInterrupt:
        return _fail(
            exit_codes.INTERRUPTED,
            "interrupted; run the same command again to resume from the last "
            "completed epoch.",
        )
    except Exception:  # noqa: BLE001 -- anything else: traceback, status 1.
        traceback.print_exc()
        return exit_codes.ERROR
    return exit_codes.OK


def configure_logging(verbose: bool = True) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # TensorFlow logs through absl as well; its INFO lines ("Assets written to")
    # would otherwise print twice.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def _fail(code, message) -> int:
    sys.stdout.flush()
    print(message.replace("\n", " "), file=sys.stderr)
    return code


def _dataset_not_found_error():
    try:
        from kerasdl.data import DatasetNotFoundError
    except ImportError:  # Older kerasdl.data: fall back to the base class.
        return FileNotFoundError
    return DatasetNotFoundError
