"""`Batcher`'s policy on a real event loop and thread pool, with a model stand-in.

The stand-in `run` sleeps like a model call (the batching policy is what is under
test, not TensorFlow) and records every batch's size.
"""

import asyncio
import concurrent.futures
import time

import numpy as np
import pytest

from kerasdl.serving.batcher import Batcher


class Model:
    name = "model"

    def __init__(self, seconds_per_call):
        self.seconds = seconds_per_call
        self.batches = []

    def run(self, servable, signature_name, inputs):
        rows = inputs["x"].shape[0]
        self.batches.append(rows)
        time.sleep(self.seconds)
        return {"y": inputs["x"] * 2.0}


def _closed_loop(model, clients, requests_each, stagger=0.0005, **batcher_kwargs):
    """`clients` coroutines, each sending its next request when answered.

    Client `i` sends `i * stagger` seconds after its answer (network and parsing
    delays), so requests reach the batcher one by one, as over sockets.
    """

    async def main():
        with concurrent.futures.ThreadPoolExecutor(4) as executor:
            batcher = Batcher(model.run, executor, **batcher_kwargs)
            latencies = []

            async def client(index):
                for step in range(requests_each):
                    await asyncio.sleep(index * stagger)
                    x = np.full((1, 3), index * 1000 + step, "float32")
                    started = time.perf_counter()
                    out = await batcher.submit(model, "serving_default", {"x": x})
                    latencies.append(time.perf_counter() - started)
                    np.testing.assert_array_equal(out["y"], x * 2.0)

            await asyncio.gather(*(client(i) for i in range(clients)))
            return latencies

    return asyncio.run(main())


def test_closed_loop_clients_fill_whole_batches():
    # Arrivals 0.5 ms apart, well inside the 20 ms timeout even on a busy machine.
    model = Model(seconds_per_call=0.05)
    _closed_loop(
        model,
        32,
        6,
        max_batch_size=32,
        batch_timeout_micros=20_000,
        num_batch_threads=1,
    )
    assert sum(model.batches) == 32 * 6
    # The first batches hold whoever arrived first; once a call ends with
    # requests queued, the clients it answered are waited for, so batches are
    # full instead of alternating between a few rows and the rest (a median near
    # 16). On a loaded machine a straggler can miss a batch: [2, 32, 32, 32, 31, 30].
    assert np.median(model.batches[2:]) >= 28, model.batches


def test_lone_client_never_waits_for_a_batch():
    model = Model(seconds_per_call=0.0)
    latencies = _closed_loop(
        model, 1, 20, max_batch_size=32, batch_timeout_micros=200_000
    )
    assert model.batches == [1] * 20
    assert np.median(latencies) < 0.05  # far below the 200 ms batch timeout


@pytest.mark.parametrize("clients", [3, 8])
def test_fill_wait_stops_at_the_clients_that_exist(clients):
    # Fewer clients than max_batch_size: once every client is back, the batch
    # runs; it does not wait out the timeout (or the 0.2 s the last call took)
    # for rows that will never come, which would double every latency.
    model = Model(seconds_per_call=0.2)
    latencies = _closed_loop(
        model,
        clients,
        5,
        max_batch_size=32,
        batch_timeout_micros=500_000,
        num_batch_threads=1,
    )
    assert max(model.batches) <= clients
    assert np.median(latencies) < 0.3, (latencies, model.batches)


def test_clients_a_slow_call_answered_are_waited_for_across_pauses():
    # A 300 ms model; its answered clients come back 2 ms apart (a busy machine),
    # more than the 1 ms timeout but far less than the call: batches stay whole.
    model = Model(seconds_per_call=0.3)
    _closed_loop(
        model,
        16,
        4,
        stagger=0.002,
        max_batch_size=16,
        batch_timeout_micros=1000,
        num_batch_threads=1,
    )
    assert sum(model.batches) == 16 * 4
    # The first batch is client 0 alone; in the last, client 0 is done.
    assert model.batches[1:-1] == [16, 16, 16], model.batches
