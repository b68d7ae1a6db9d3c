"""uvicorn as the service runs it: a request's headers must arrive within
:data:`HEADER_TIMEOUT_S` (uvicorn has no such limit: a client sending a byte a second would
hold a connection for ever); bodies are timed by :class:`~emotrace.server.app.RequestGate`."""

from __future__ import annotations

import asyncio
from typing import Any

#: Seconds a connection may take to send a request's headers: from its opening, or on a
#: kept-alive connection from the request's first byte (idle kept-alive connections are
#: uvicorn's: closed after ``timeout_keep_alive``).
HEADER_TIMEOUT_S = 10.0


def _protocol_class() -> type:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with a header deadline."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class HeaderDeadlineProtocol(Base):
        header_timeout_s = HEADER_TIMEOUT_S
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            in_request = self.cycle is not None and not self.cycle.response_complete
            if not in_request and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            upgraded = self.transport.get_protocol() is not self  # now a WebSocket
            if upgraded or (self.cycle is not None and not self.cycle.response_complete):
                self._disarm()  # the headers are in: the body is timed by the app
            elif self._deadline is None and not self.transport.is_closing():
                self._arm()  # the next request on a kept-alive connection has begun

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol


def uvicorn_config(app: Any, **options: Any):
    """``uvicorn.Config`` for ``app`` with the header deadline (``options`` as uvicorn's)."""
    import uvicorn

    return uvicorn.Config(app, http=_protocol_class(), **options)
