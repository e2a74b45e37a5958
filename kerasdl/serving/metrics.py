"""Request counters and latency histograms in Prometheus' text format."""

import bisect
import threading

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


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs):
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def lines(self, name, labels):
        out, running = [], 0
        for bound, count in zip(self.buckets + ("+Inf",), self.counts):
            running += count
            out.append(f"{name}_bucket{_labels(labels + [('le', bound)])} {running}")
        out.append(f"{name}_sum{_labels(labels)} {self.total}")
        out.append(f"{name}_count{_labels(labels)} {running}")
        return out


class Metrics:
    """Counts requests by model, API and HTTP status; times them; sizes batches.

    Only models the server knows become label values (others count as `""`), so a
    client cannot grow the label set without bound.
    """

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, model_names=()):
        self.model_names = set(model_names)
        self._lock = threading.Lock()
        self.requests = {}  # (model, api, code) -> count
        self.latency = {}  # (model, api) -> _Histogram
        self.batch_sizes = {}  # model -> _Histogram
        self.in_flight = {}  # model -> requests accepted and not yet answered

    def request_started(self, model):
        """Counts a request the server has accepted and is working on."""
        model = self._model(model)
        with self._lock:
            self.in_flight[model] = self.in_flight.get(model, 0) + 1

    def request_finished(self, model):
        """Ends a `request_started` once its answer is ready."""
        model = self._model(model)
        with self._lock:
            self.in_flight[model] -= 1

    def _model(self, name):
        return name if name in self.model_names else ""

    def observe_request(self, model, api, code, seconds):
        model = self._model(model)
        with self._lock:
            key = (model, api, str(code))
            self.requests[key] = self.requests.get(key, 0) + 1
            histogram = self.latency.get((model, api))
            if histogram is None:
                histogram = self.latency[(model, api)] = _Histogram(LATENCY_BUCKETS)
            histogram.observe(seconds)

    def observe_batch(self, model, size):
        with self._lock:
            histogram = self.batch_sizes.get(model)
            if histogram is None:
                histogram = self.batch_sizes[model] = _Histogram(BATCH_BUCKETS)
            histogram.observe(size)

    def render(self):
        with self._lock:
            lines = [
                "# HELP kerasdl_serving_request_count Requests answered, by model, API and HTTP status.",
                "# TYPE kerasdl_serving_request_count counter",
            ]
            for (model, api, code), count in sorted(self.requests.items()):
                labels = [("model_name", model), ("api", api), ("code", code)]
                lines.append(f"kerasdl_serving_request_count{_labels(labels)} {count}")
            lines += [
                "# HELP kerasdl_serving_request_latency_seconds Time from request to response.",
                "# TYPE kerasdl_serving_request_latency_seconds histogram",
            ]
            for (model, api), histogram in sorted(self.latency.items()):
                lines += histogram.lines(
                    "kerasdl_serving_request_latency_seconds",
                    [("model_name", model), ("api", api)],
                )
            lines += [
                "# HELP kerasdl_serving_requests_in_flight Inference requests accepted and not yet answered.",
                "# TYPE kerasdl_serving_requests_in_flight gauge",
            ]
            for model, count in sorted(self.in_flight.items()):
                lines.append(
                    f"kerasdl_serving_requests_in_flight{_labels([('model_name', model)])} {count}"
                )
            lines += [
                "# HELP kerasdl_serving_batch_size Rows per batched model call.",
                "# TYPE kerasdl_serving_batch_size histogram",
            ]
            for model, histogram in sorted(self.batch_sizes.items()):
                lines += histogram.lines(
                    "kerasdl_serving_batch_size", [("model_name", model)]
                )
        return ("\n".join(lines) + "\n").encode()
