"""Runs the emulator's ASGI app with uvicorn in a background thread.

The HTTP protocol is uvicorn's h11 protocol with one addition: each request's scope carries the
connection's transport under ``scope["extensions"]["rahcp.transport"]``, so the fault middleware
can drop a connection without answering (a client must see a transport error, not a 500).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

TRANSPORT_EXTENSION = "rahcp.transport"


class TransportExposingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that hands the transport to the app through the scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = scope.setdefault("extensions", {})
            extensions[TRANSPORT_EXTENSION] = transport
            await inner(scope, receive, send)

        self.app = app


class ApiServer:
    """A uvicorn server on its own event loop thread, bound to a pre-opened socket."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None
    ) -> None:
        """``tls``: ``(certificate PEM, key PEM)`` to serve HTTPS."""
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every response written in two parts waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        config = uvicorn.Config(
            app,
            http=TransportExposingH11Protocol,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self, timeout: float = 15.0) -> None:
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="hcp-emulator-api",
            daemon=True,
        )
        self._thread.start()
        end = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the emulator API server failed to start")
            if time.monotonic() > end:
                raise TimeoutError("the emulator API server did not start in time")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        self._sock.close()
