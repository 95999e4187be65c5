"""The HTTP connection both servers (endpoint and API) run on: uvicorn's httptools protocol with
read deadlines and a shutdown that drains keep-alive connections.

uvicorn bounds only the idle time between requests (`timeout_keep_alive`); a client may take
forever to send a request's headers or body (a slowloris holds a connection, and a worker's
memory for its buffered part, for as long as it likes). Here a request's headers must arrive
within `header_timeout` seconds of its first byte (or of the connection's opening) and its body
within `body_timeout` seconds of its headers; past that the client gets a 408 with
`Connection: close` (or, once an answer has started, the connection is closed).

On shutdown (SIGTERM), uvicorn closes idle keep-alive connections at once: a client that sent
a request on one at that moment reads a reset (issue 14: 32 of 32 pooled connections lost one
request). Here an idle connection stays open for `drain` seconds: a request arriving on it is
answered with `Connection: close` (so the client closes it, having its answer); one that sees
no request is then closed (a FIN, which a pool notices before reusing the connection). Answers
in flight carry `Connection: close` as with uvicorn.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_BODY = b'{"error":"request_timeout","message":"The request was not received in time."}'
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body read deadlines and a draining shutdown."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
        body_timeout: float,
        drain: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.drain = drain
        self.deadline: asyncio.TimerHandle | None = None
        self.draining: asyncio.TimerHandle | None = None
        self.receiving = False  # between a request's first byte and its last

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)  # the first request's headers are due too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.draining is not None:
            self.draining.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.receiving = True
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining is not None and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with `Connection: close`, then closed
        self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.receiving = False
        self._disarm()

    def shutdown(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # uvicorn's: this answer closes the connection
        if self.draining is None:
            self.draining = self.loop.call_later(self.drain, self._close_if_idle)

    def _close_if_idle(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.receiving and not self.transport.is_closing():
            self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        """The client did not send its request in time: a 408 unless an answer has started,
        then the connection is closed; the application, if it waits for the body, is told the
        client is gone (and what it sends is dropped)."""
        self.deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_TIMEOUT_ANSWER)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def guarded_protocol(header_timeout: float, body_timeout: float, drain: float) -> Any:
    """The protocol class for uvicorn's `http` option, with these limits (a partial: it is
    pickled to worker processes)."""
    return functools.partial(
        GuardedHttpTools, header_timeout=header_timeout, body_timeout=body_timeout, drain=drain
    )
