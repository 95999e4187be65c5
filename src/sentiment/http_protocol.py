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
request). Here connections are served as before for SETTLE_SECONDS (while every worker closes
its listening socket), then answers carry `Connection: close` (so the client closes the
connection, having its answer), and an idle connection stays open `drain` seconds more for a
last request before it is closed (a FIN, which a pool notices before reusing the connection).

A connection older than `max_age` seconds is closed by its next answer (`Connection: close`):
the endpoint's workers each listen on their own socket, and the kernel picks one for each new
connection, so a client pool that never idles (the API's) kept every connection on the workers
it first reached: a worker replaced after a `kill -9` got none of them. Reconnecting now and
then spreads them again.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _closing_answer(status: bytes, code: str, message: str) -> bytes:
    """A whole JSON error answer that closes the connection (written by the protocol itself:
    no application request exists)."""
    body = b'{"error":"%s","message":"%s"}' % (code.encode(), message.encode())
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        % (
            status,
            len(body),
        )
        + b"connection: close\r\n\r\n"
        + body
    )


_TIMEOUT_ANSWER = _closing_answer(
    b"408 Request Timeout", "request_timeout", "The request was not received in time."
)
_MALFORMED_ANSWER = _closing_answer(
    b"400 Bad Request", "bad_request", "The request is not valid HTTP/1.1."
)


# On shutdown, answers keep their connections open this long before they close them: the
# endpoint's workers (each with its own listening socket) notice SIGTERM up to ~0.1 s apart
# (uvicorn's tick), and a client told to close by one would reconnect to a sibling about to
# close its socket, with the connection still in that socket's queue: a reset (measured: 1-11
# of ~4,000 requests with 32 clients and 2 workers, none once every socket is closed first).
SETTLE_SECONDS = 0.3
# How often the deadlines are checked: a deadline is enforced within this much of its time. One
# timer per worker, not two per request: arming and cancelling two uvloop timers cost 3.8 us
# (measured on this machine; a 1-text /invocations is ~50 us of a worker), noting two deadlines
# with loop.time() 0.1 us.
SWEEP_SECONDS = 0.25


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
        max_age: float = 0.0,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.drain = drain
        self.max_age = max_age
        self.retire_at = float("inf")  # loop time past which answers close the connection
        self.due: float | None = None  # loop time by which the request must be in
        self.draining: asyncio.TimerHandle | None = None
        self.closing = False  # answers close their connection
        self.receiving = False  # between a request's first byte and its last

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, as JSON like every other error."""
        self.due = None
        self.transport.write(_MALFORMED_ANSWER)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        now = self.loop.time()
        self.due = now + self.header_timeout  # the first request's headers too
        if self.max_age > 0:
            self.retire_at = now + self.max_age
        state: Any = self.server_state  # one sweeper per server, kept on its shared state
        if getattr(state, "sweeper", None) is None:
            state.sweeper = self.loop.call_later(SWEEP_SECONDS, _sweep, state, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.due = None
        if self.draining is not None:
            self.draining.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.receiving = True
        self.due = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        now = self.loop.time()
        if (self.closing or now >= self.retire_at) and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with `Connection: close`, then closed
        self.due = now + self.body_timeout

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.receiving = False
        self.due = None

    def shutdown(self) -> None:
        if self.draining is None:
            self.draining = self.loop.call_later(SETTLE_SECONDS, self._start_draining)

    def _start_draining(self) -> None:
        self.closing = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # uvicorn's: this answer closes the connection
        self.draining = self.loop.call_later(self.drain, self._close_if_idle)

    def _close_if_idle(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.receiving and not self.transport.is_closing():
            self.transport.close()

    def expire(self) -> None:
        """The client did not send its request in time: a 408 unless an answer has started,
        then the connection is closed; the application, if it waits for the body, is told the
        client is gone (and what it sends is dropped)."""
        if self.flow is not None and self.flow.read_paused:
            # The server stopped reading (back-pressure: the application has not taken the body
            # yet, or a pipelined request waits its turn); the client is not the slow one.
            self.due = self.loop.time() + self.body_timeout
            return
        self.due = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_TIMEOUT_ANSWER)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def _sweep(state: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Expire the connections past their deadline; again in SWEEP_SECONDS while any is open."""
    now = loop.time()
    for connection in list(state.connections):
        due = getattr(connection, "due", None)
        if due is not None and now >= due:
            connection.expire()
    state.sweeper = (
        loop.call_later(SWEEP_SECONDS, _sweep, state, loop) if state.connections else None
    )


def guarded_protocol(
    header_timeout: float, body_timeout: float, drain: float, max_age: float = 0.0
) -> Any:
    """The protocol class for uvicorn's `http` option, with these limits (a partial: it is
    pickled to worker processes)."""
    return functools.partial(
        GuardedHttpTools,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        drain=drain,
        max_age=max_age,
    )
