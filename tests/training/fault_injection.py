"""Runs `kerasdl.recipes.lenet` with an injected fault; used by test_fault_tolerance.py.

    python tests/training/fault_injection.py MODE [recipe flags...]

MODE: `none`; `kill-after-epoch:K` (SIGKILL this process right after the checkpoint
of epoch K is on disk, i.e. at an epoch boundary); `nan-at-epoch:K` (poison a weight
with NaN when epoch K+1 begins, so the loss diverges); `mirrored-cpus:N` (split the
CPU into N logical devices first, for MirroredStrategy tests).
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

    import kerasdl.recipes.lenet

    sys.exit(kerasdl.recipes.lenet.main(argv))


if __name__ == "__main__":
    main()
