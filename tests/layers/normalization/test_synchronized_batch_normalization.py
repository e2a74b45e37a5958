"""synchronized=True under tf.distribute.MirroredStrategy on 2 logical CPUs.

Logical devices must be configured before TensorFlow initializes, which the
test process has long done, so the check runs in a fresh subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute only"
)

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from kerasdl.layers import BatchNormalization

    x = np.random.default_rng(0).normal(size=(8, 3, 4)).astype("float32")
    # Replica halves with different distributions, so local != global stats.
    x[4:] = x[4:] * 3.0 + 5.0
    mask = np.ones((8, 3), bool)
    mask[1, 2:] = False
    mask[6, 1:] = False
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}
    for masked in (False, True):
        for synchronized in (True, False):
            with strategy.scope():
                layer = BatchNormalization(momentum=0.0, synchronized=synchronized)
                layer.build((None, 3, 4))
            def per_replica(ctx):
                i = ctx.replica_id_in_sync_group
                return (tf.constant(x[4 * i:4 * i + 4]),
                        tf.constant(mask[4 * i:4 * i + 4]))
            values = strategy.experimental_distribute_values_from_function(
                per_replica)

            @tf.function
            def step(values):
                def fn(xm):
                    xs, ms = xm
                    return layer(xs, training=True, mask=ms if masked else None)
                return strategy.run(fn, args=(values,))

            out = step(values)
            out = np.concatenate([v.numpy() for v in
                                  strategy.experimental_local_results(out)])
            key = f"{'masked' if masked else 'plain'}_{'sync' if synchronized else 'local'}"
            result[key] = {
                "out": out.tolist(),
                "moving_mean": layer.moving_mean.numpy().tolist(),
                "moving_variance": layer.moving_variance.numpy().tolist(),
            }
    print("RESULT" + json.dumps(result))
    """
)


def test_synchronized_moments_equal_single_device_full_batch():
    from kerasdl.layers import BatchNormalization

    env = dict(os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT") :])
    assert result["replicas"] == 2

    x = np.random.default_rng(0).normal(size=(8, 3, 4)).astype("float32")
    x[4:] = x[4:] * 3.0 + 5.0
    mask = np.ones((8, 3), bool)
    mask[1, 2:] = False
    mask[6, 1:] = False
    for masked in (False, True):
        single = BatchNormalization(momentum=0.0)
        expected = keras.ops.convert_to_numpy(
            single(x, training=True, mask=mask if masked else None)
        )
        sync = result[f"{'masked' if masked else 'plain'}_sync"]
        np.testing.assert_allclose(
            sync["moving_mean"], single.moving_mean.numpy(), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            sync["moving_variance"],
            single.moving_variance.numpy(),
            rtol=1e-4,
            atol=1e-4,
        )
        keep = mask if masked else np.ones((8, 3), bool)
        np.testing.assert_allclose(
            np.array(sync["out"])[keep], expected[keep], rtol=1e-4, atol=1e-4
        )
        # Without synchronization each replica normalizes with its own half.
        local = np.array(result[f"{'masked' if masked else 'plain'}_local"]["out"])
        assert np.abs(local[keep] - expected[keep]).max() > 0.1
