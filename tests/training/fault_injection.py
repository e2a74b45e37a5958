"""Runs `kerasdl.recipes.lenet` with an injected fault; used by test_fault_tolerance.py.

    python tests/training/fault_injection.py MODE [recipe flags...]

MODE: `none`; `kill-after-epoch:K` (SIGKILL this process right after the checkpoint
of epoch K is on disk, i.e. at an epoch boundary); `nan-at-epoch:K` (poison a weight
with NaN when epoch K+1 begins, so the loss diverges); `mirrored-cpus:N` (split the
CPU into N logical devices first, for MirroredStrategy tests);
`kill-during-checkpoint:K` (SIGKILL halfway through writing epoch K's checkpoint);
`kill-before-final` (SIGKILL when `fit` is over, before the final weights are
written); `kill-after-fit` (SIGKILL once the run is marked fitted, before evaluation
and export); `kill-during-export` (SIGKILL when the export is written and checked,
before it is renamed into place); `fail-export` (the export raises `ExportError`);
`fill-disk-after-epoch:K` (after epoch K's checkpoint, fill the workdir's disk with
the file `$FILLER_PATH`, so the next write fails with ENOSPC).
"""

import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def main():
    mode, argv = sys.argv[1], sys.argv[2:]
    kind, _, value = mode.partition(":")

    if kind == "mirrored-cpus":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * int(value)
        )

    from kerasdl.callbacks.resumable_checkpoint import ResumableCheckpoint

    if kind == "kill-after-epoch":
        original_write = ResumableCheckpoint.write

        def write_then_die(self, epochs_completed):
            path = original_write(self, epochs_completed)
            if epochs_completed == int(value):
                os.kill(os.getpid(), signal.SIGKILL)
            return path

        ResumableCheckpoint.write = write_then_die

    if kind == "nan-at-epoch":
        import numpy as np

        def poison(self, epoch, logs=None):
            if epoch == int(value):
                kernel = self.model.trainable_variables[0]
                kernel.assign(np.full(kernel.shape, np.nan, kernel.dtype))

        ResumableCheckpoint.on_epoch_begin = poison

    if kind == "kill-during-checkpoint":
        calls = []

        def write_half_then_die(file, arrays):
            calls.append(1)
            if len(calls) == int(value):
                file.write(b"PK\x03\x04 torn checkpoint")
                file.flush()
                os.fsync(file.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            original_write_arrays(file, arrays)

        original_write_arrays = ResumableCheckpoint._write_arrays
        ResumableCheckpoint._write_arrays = staticmethod(write_half_then_die)

    if kind == "kill-before-final":
        original_write = ResumableCheckpoint.write

        def die_before_final(self, epochs_completed, name=None, extra=None):
            if name is not None:
                os.kill(os.getpid(), signal.SIGKILL)
            return original_write(self, epochs_completed, name=name, extra=extra)

        ResumableCheckpoint.write = die_before_final

    if kind == "kill-after-fit":
        from kerasdl.tasks.run_directory import RunDirectory

        original_mark = RunDirectory.mark_fitted

        def mark_then_die(self, **details):
            original_mark(self, **details)
            os.kill(os.getpid(), signal.SIGKILL)

        RunDirectory.mark_fitted = mark_then_die

    if kind in ("kill-during-export", "fail-export"):
        from kerasdl.export import ExportError, signatures

        def unpublished(tmp_dir, base_dir):
            if kind == "fail-export":
                raise ExportError("injected failure before publication.")
            os.kill(os.getpid(), signal.SIGKILL)

        signatures.rename_into_place = unpublished

    if kind == "fill-disk-after-epoch":
        original_write = ResumableCheckpoint.write

        def write_then_fill(self, epochs_completed, name=None, extra=None):
            path = original_write(self, epochs_completed, name=name, extra=extra)
            if epochs_completed == int(value) and name is None:
                with open(os.environ["FILLER_PATH"], "wb", buffering=0) as filler:
                    for chunk in (1 << 16, 1 << 12, 1 << 9):
                        try:
                            while True:
                                filler.write(b"\0" * chunk)
                        except OSError:
                            pass
            return path

        ResumableCheckpoint.write = write_then_fill

    import kerasdl.recipes.lenet

    sys.exit(kerasdl.recipes.lenet.main(argv))


if __name__ == "__main__":
    main()
