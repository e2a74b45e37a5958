"""uvicorn's httptools HTTP/1.1 protocol with the limits that keep clients from starving the server.

uvicorn bounds neither the size nor the number of request headers on its httptools
parser, times out only idle keep-alive connections (not a connection that never
finishes its request: "slowloris"), and its `limit_concurrency` answers 503 to
*every* request once the cap is reached, established clients included.
`LimitedHttpToolsProtocol` adds, per connection:

- **header size and count**: a request whose request line and headers exceed
  `max_header_bytes`, or that has more than `max_header_count` header fields, gets
  431 and the connection is closed. Bytes are counted as they arrive, so a header
  that never ends stops at the limit instead of growing the process.
- **request timeout**: a request's headers and body must arrive within
  `request_timeout_seconds` of the connection opening (or of its first byte, for
  later requests on a keep-alive connection); otherwise 408 and close. The time the
  model takes is not counted.
- **connection cap**: a new connection beyond `max_connections` open ones (in this
  process) gets 503 and is closed at once; the open connections are served as usual.

Each refusal is a JSON `{"error": ...}` naming the flag that sets the limit. Plug
it in with `uvicorn.Config(http=protocol_class(limits))`.
"""

import dataclasses
import functools
import json
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("kerasdl.serving")

# How long a refused connection's further input is read and dropped.
LINGER_SECONDS = 1.0
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_REASONS[503] = b"Service Unavailable"


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits of `LimitedHttpToolsProtocol`.

    Args:
        max_header_bytes: most bytes of request line plus headers. Defaults to 65536.
        max_header_count: most header fields in one request. Defaults to 100.
        request_timeout_seconds: seconds in which a request's headers and body must
            arrive. Defaults to 60.
        max_connections: most open connections; more are refused with 503.
            Defaults to 1000.
    """

    max_header_bytes: int = 65536
    max_header_count: int = 100
    request_timeout_seconds: float = 60.0
    max_connections: int = 1000

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value <= 0:
                raise ValueError(
                    f"--{field.name} must be > 0. Received: {field.name}={value}"
                )


def _response(status, message):
    body = json.dumps({"error": message}).encode()
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol` with `HttpLimits` (see the module docstring).

    Args:
        *args: uvicorn's protocol arguments.
        limits: the `HttpLimits` to enforce.
        **kwargs: uvicorn's protocol keyword arguments.
    """

    def __init__(self, *args, limits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._in_head = True  # reading a request line and headers
        self._head_bytes = 0
        self._refusal = None  # (status, message) decided while parsing
        self._deadline = None
        self._discarding = False  # refused: reading only to drop the rest

    # --- the request timeout ------------------------------------------------------------

    def _arm(self):
        if self._deadline is None:
            self._deadline = self.loop.call_later(
                self.limits.request_timeout_seconds, self._on_deadline
            )

    def _disarm(self):
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self):
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.pipeline:  # busy answering earlier requests on this connection
            self._arm()
            return
        seconds = self.limits.request_timeout_seconds
        self._refuse(
            408,
            f"Request not received in full within {seconds:g} seconds "
            "(--request_timeout_seconds)",
        )

    def _refuse(self, status, message, linger=True):
        """Answers `status` with a JSON error and closes the connection.

        With `linger`, the connection is half-closed and what the client still
        sends is read and dropped for a moment before the close: closing a socket
        with unread data sends a reset, which can destroy the answer before the
        client reads it.
        """
        self._disarm()
        logger.info("refused %s: %d %s", self.client, status, message)
        answered = self.cycle is not None and self.cycle.response_started
        if not answered:
            self.transport.write(_response(status, message))
        if self.cycle is not None and not self.cycle.response_complete:
            # The app sees a disconnect: its reads end, its answer is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if linger and self.transport.can_write_eof():
            self._discarding = True
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    # --- uvicorn's protocol callbacks ---------------------------------------------------

    def connection_made(self, transport):
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503,
                f"Too many open connections (over {self.limits.max_connections}, "
                "--max_connections); retry later",
                linger=False,  # a refused connection must not hold its socket
            )
            return
        self._arm()

    def connection_lost(self, exc):
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data):
        if self._discarding or self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._refusal is not None:
            self._refuse(*self._refusal)
        elif self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, self._too_large())

    def _too_large(self):
        return (
            f"Request headers are over the {self.limits.max_header_bytes}-byte limit "
            "(--max_header_bytes)"
        )

    def on_message_begin(self):
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self):
        self._in_head = False
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.limits.max_header_bytes:
            self._refusal = (431, self._too_large())
        elif len(self.headers) > self.limits.max_header_count:
            message = (
                f"Request has {len(self.headers)} header fields, over the limit of "
                f"{self.limits.max_header_count} (--max_header_count)"
            )
            self._refusal = (431, message)
        else:
            super().on_headers_complete()

    def on_body(self, body):
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self):
        if self._refusal is not None:
            return
        self._in_head = True
        self._head_bytes = 0
        self._disarm()
        super().on_message_complete()


def protocol_class(limits):
    """A uvicorn `http=` protocol class enforcing `limits`."""
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)
