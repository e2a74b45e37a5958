"""Merges concurrent predict requests into one model call."""

import asyncio
import logging
import time

import numpy as np

logger = logging.getLogger("kerasdl.serving")

# While a batch waits for the clients the previous call answered, a pause
# between their arrivals of up to this fraction of that call's time (or
# `batch_timeout_micros`, if longer) does not end the wait.
FILL_GAP_FRACTION = 0.1


class _Pending:
    __slots__ = ("arrived", "future", "inputs", "rows")

    def __init__(self, inputs, rows, future):
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.arrived = time.perf_counter()


class Batcher:
    """An adaptive batcher: concatenates queued requests along axis 0.

    A request runs as soon as the event loop has handled the requests that
    arrived with it (those join its batch) when a worker slot is free and nothing
    else is running, so a lone client pays no waiting. While model calls are in
    flight, requests queue; when a slot frees, up to `max_batch_size` queued rows
    (with the same servable, signature and per-row shapes) run as one call, after
    waiting at most `batch_timeout_micros` for more to arrive. Results are split
    back by row.

    The batch after a call also waits for the clients that call answered: they
    (as many rows as the call had) usually send their next request at once, so
    the next batch of that kind waits for them while requests keep coming, until
    it holds the rows of the call that ended plus those already queued, or
    `max_batch_size`, or no request came since the call ended or the last
    arrival for `batch_timeout_micros` or a tenth of the call's time, whichever
    is longer (a busy machine delays some clients by more than a millisecond,
    which would cut a 100 ms model's batch in two), and never longer than the
    call itself took.
    A lone client is never held (its batch expects one row: its own). Without
    this wait, clients that each wait for their answer split into batches of a
    few rows and of the rest that alternate, and a model whose batch of 16 runs
    at 70% of its batch of 32's rows per second loses that 30%.

    Args:
        run: `(servable, signature_name, inputs) -> outputs`, called in `executor`.
        executor: a `concurrent.futures` executor for model calls.
        max_batch_size: most rows per call. Defaults to 32.
        batch_timeout_micros: longest wait to fill a batch under load. Defaults to 1000.
        num_batch_threads: model calls in flight at once. Defaults to 1: on a
            CPU one call already uses every core through TensorFlow's intra-op
            threads, and a second call in flight only splits them (with a short
            `batch_timeout_micros` it runs one-row batches beside full ones).
        on_batch: optional `(model_name, rows)` callback for metrics.
    """

    def __init__(
        self,
        run,
        executor,
        max_batch_size=32,
        batch_timeout_micros=1000,
        num_batch_threads=1,
        on_batch=None,
    ):
        if max_batch_size < 1:
            raise ValueError(
                f"max_batch_size must be >= 1. Received: max_batch_size={max_batch_size}"
            )
        if batch_timeout_micros < 0:
            raise ValueError(
                f"batch_timeout_micros must be >= 0. Received: batch_timeout_micros={batch_timeout_micros}"
            )
        self.run = run
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout_micros / 1e6
        self.num_batch_threads = max(1, num_batch_threads)
        self.on_batch = on_batch
        self.queues = {}  # key -> list[_Pending]
        # key -> (rows expected, wait began, deadline): a batch filling after a call.
        self.filling = {}
        self.running = 0
        self._wakeup = None
        self._dispatch_scheduled = False

    @staticmethod
    def _key(servable, signature_name, inputs):
        shapes = tuple((k, v.shape[1:], v.dtype.str) for k, v in sorted(inputs.items()))
        return (id(servable), servable, signature_name, shapes)

    async def submit(self, servable, signature_name, inputs):
        """Runs `inputs` (every array batched on axis 0) and returns its outputs."""
        rows = next(iter(inputs.values())).shape[0]
        loop = asyncio.get_running_loop()
        pending = _Pending(inputs, rows, loop.create_future())
        if rows >= self.max_batch_size:
            return await self._call(servable, signature_name, [pending], alone=True)
        key = self._key(servable, signature_name, inputs)
        self.queues.setdefault(key, []).append(pending)
        if not self._dispatch_scheduled:
            # After the callbacks already queued on the loop: requests that came
            # in together are parsed and queued before the batch is cut.
            self._dispatch_scheduled = True
            loop.call_soon(self._scheduled_dispatch)
        return await pending.future

    def _scheduled_dispatch(self):
        self._dispatch_scheduled = False
        self._dispatch()

    def _dispatch(self):
        loop = asyncio.get_running_loop()
        while self.running < self.num_batch_threads and self.queues:
            key, queue = max(self.queues.items(), key=lambda item: -item[1][0].arrived)
            queued_rows = sum(p.rows for p in queue)
            now = time.perf_counter()
            waited = now - queue[0].arrived
            if (
                self.running
                and queued_rows < self.max_batch_size
                and waited < self.batch_timeout
            ):
                if self._wakeup is None:  # under load: give the batch a moment to fill
                    self._wakeup = loop.call_later(
                        self.batch_timeout - waited, self._wake
                    )
                return
            wait = self._fill_wait(key, queue, queued_rows, now)
            if wait > 0:
                if self._wakeup is None:
                    self._wakeup = loop.call_later(wait, self._wake)
                return
            self.filling.pop(key, None)
            batch, rows = [], 0
            while queue and rows + queue[0].rows <= self.max_batch_size:
                rows += queue[0].rows
                batch.append(queue.pop(0))
            if not queue:
                del self.queues[key]
            _, servable, signature_name, _ = key
            self.running += 1
            asyncio.ensure_future(self._call(servable, signature_name, batch))

    def _fill_wait(self, key, queue, queued_rows, now):
        """Seconds to go on waiting for the clients a finished call answered, or 0."""
        if key not in self.filling:
            return 0.0
        expected, began, deadline, gap = self.filling[key]
        since_last = now - max(queue[-1].arrived, began)
        if queued_rows >= expected or since_last >= gap:
            return 0.0
        return max(0.0, min(gap - since_last, deadline - now))

    def _wake(self):
        self._wakeup = None
        self._dispatch()

    async def _call(self, servable, signature_name, batch, alone=False):
        loop = asyncio.get_running_loop()
        total = sum(p.rows for p in batch)
        started = time.perf_counter()
        try:
            if len(batch) == 1:
                inputs = batch[0].inputs
            else:
                inputs = {
                    k: np.concatenate([p.inputs[k] for p in batch])
                    for k in batch[0].inputs
                }
            if self.on_batch is not None:
                self.on_batch(servable.name, total)
            try:
                outputs = await loop.run_in_executor(
                    self.executor, self.run, servable, signature_name, inputs
                )
            except Exception as error:  # noqa: BLE001 - every waiter gets the error
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(error)
                return None if not alone else await batch[0].future
            batched = all(v.ndim and v.shape[0] == total for v in outputs.values())
            if len(batch) > 1 and not batched:
                # Outputs not batched on axis 0: run each request on its own.
                for p in batch:
                    try:
                        result = await loop.run_in_executor(
                            self.executor, self.run, servable, signature_name, p.inputs
                        )
                        p.future.set_result(result)
                    except Exception as error:  # noqa: BLE001
                        p.future.set_exception(error)
                return None
            start = 0
            for p in batch:
                part = (
                    outputs
                    if len(batch) == 1
                    else {k: v[start : start + p.rows] for k, v in outputs.items()}
                )
                start += p.rows
                if not p.future.done():
                    p.future.set_result(part)
            return await batch[0].future if alone else None
        finally:
            if not alone:
                self.running -= 1
                # Its clients come back: wait for them (see the class docstring).
                key = self._key(servable, signature_name, batch[0].inputs)
                queued = sum(p.rows for p in self.queues.get(key, ()))
                now = time.perf_counter()
                seconds = now - started
                self.filling[key] = (
                    min(self.max_batch_size, queued + total),
                    now,
                    now + seconds,
                    max(self.batch_timeout, FILL_GAP_FRACTION * seconds),
                )
                if self.queues:
                    self._dispatch()
