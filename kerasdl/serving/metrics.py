"""Request counts, latencies, in-flight requests and batch sizes, with `prometheus_client`.

One process: the metrics live in the `Metrics` object's own `CollectorRegistry`.
`--workers N`: the server sets `PROMETHEUS_MULTIPROC_DIR` (see
`multiprocess_directory`) before it starts the workers; each worker's
`prometheus_client` then keeps its values in memory-mapped files there, and
whichever worker answers `/monitoring/prometheus/metrics` reports the sum over
all workers (`MultiProcessCollector`; the in-flight gauge counts live workers
only).

Exposed (the page lists labels in alphabetical order):

- `kerasdl_serving_request_count_total{model_name, api, code}`: requests answered,
  by HTTP status (a counter; `prometheus_client` appends `_total`).
- `kerasdl_serving_request_latency_seconds{model_name, api}`: histogram of the time
  from a request's routing to its answer.
- `kerasdl_serving_requests_in_flight{model_name}`: inference requests accepted
  and not yet answered.
- `kerasdl_serving_batch_size{model_name}`: histogram of rows per batched call.
"""

import contextlib
import os
import shutil
import tempfile

import prometheus_client
from prometheus_client import multiprocess

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_enabled():
    """True when `prometheus_client` keeps values in `PROMETHEUS_MULTIPROC_DIR`."""
    return bool(os.environ.get(MULTIPROC_ENV))


@contextlib.contextmanager
def multiprocess_directory():
    """Sets `PROMETHEUS_MULTIPROC_DIR` for worker processes started inside.

    A directory given by the user is kept (it must be empty, as
    `prometheus_client` requires); otherwise a temporary one is made and deleted
    on exit. Yields the directory.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="kerasdl-prometheus-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def worker_died(pid):
    """Drops a dead worker's live gauges (its counters and histograms stay)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)


class Metrics:
    """Counts requests by model, API and HTTP status; times them; sizes batches.

    Only models the server knows become label values (others count as `""`), so a
    client cannot grow the label set without bound.

    Args:
        model_names: the names of the served models: a collection, or any object
            that answers `name in model_names` (the `ModelManager`, whose answer
            follows live config reloads). Defaults to none.
    """

    content_type = prometheus_client.CONTENT_TYPE_LATEST

    def __init__(self, model_names=()):
        if not hasattr(model_names, "__contains__") or isinstance(
            model_names, (list, tuple)
        ):
            model_names = set(model_names)
        self.model_names = model_names
        self.multiprocess = multiprocess_enabled()
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values go to files, collected at scrape time.
        registry = None if self.multiprocess else self.registry
        self.requests = prometheus_client.Counter(
            "kerasdl_serving_request_count",
            "Requests answered, by model, API and HTTP status.",
            ["model_name", "api", "code"],
            registry=registry,
        )
        self.latency = prometheus_client.Histogram(
            "kerasdl_serving_request_latency_seconds",
            "Time from request to response.",
            ["model_name", "api"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = prometheus_client.Gauge(
            "kerasdl_serving_requests_in_flight",
            "Inference requests accepted and not yet answered.",
            ["model_name"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.batch_sizes = prometheus_client.Histogram(
            "kerasdl_serving_batch_size",
            "Rows per batched model call.",
            ["model_name"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._children = {}  # (metric, labels) -> labelled child, saves labels()

    def _child(self, metric, *labels):
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _model(self, name):
        return name if name in self.model_names else ""

    def request_started(self, model):
        """Counts a request the server has accepted and is working on."""
        self._child(self.in_flight, self._model(model)).inc()

    def request_finished(self, model):
        """Ends a `request_started` once its answer is ready."""
        self._child(self.in_flight, self._model(model)).dec()

    def observe_request(self, model, api, code, seconds):
        """Counts one answered request and its latency."""
        model = self._model(model)
        self._child(self.requests, model, api, str(code)).inc()
        self._child(self.latency, model, api).observe(seconds)

    def observe_batch(self, model, size):
        """Records one batched model call of `size` rows."""
        self._child(self.batch_sizes, self._model(model)).observe(size)

    def render(self):
        """The exposition page (bytes, `content_type`): every worker's sum if multiprocess."""
        if not self.multiprocess:
            return prometheus_client.generate_latest(self.registry)
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return prometheus_client.generate_latest(registry)
