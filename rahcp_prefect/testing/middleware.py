"""ASGI middleware of the API plane: X-Request-ID echo, request counting, fault injection."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from rahcp_prefect.testing.apiserver import TRANSPORT_EXTENSION
from rahcp_prefect.testing.counter import RequestCounter
from rahcp_prefect.testing.faults import FAULT_DETAIL, FaultInjector

Scope = dict[str, Any]
ASGIApp = Any
CONTROL_PREFIX = "/_emulator"


class RequestIDMiddleware:
    """Echo the request's ``X-Request-ID`` on the response, or set a fresh uuid4 hex."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        raw = request_id.encode("latin-1", "replace")

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append((b"x-request-id", raw))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class CountAndFaultMiddleware:
    """Count each API request by route template and apply API-plane fault rules.

    The control routes under ``/_emulator`` are neither counted nor faulted, so a test can always
    remove the rules it set. ``routes`` lists (mount prefix, APIRoute) pairs, used to name the
    route of a request that a fault answers before routing.
    """

    def __init__(
        self,
        app: ASGIApp,
        faults: FaultInjector,
        counter: RequestCounter,
        api_prefix: str,
        routes: list[tuple[str, Any]],
    ) -> None:
        self.app = app
        self.faults = faults
        self.counter = counter
        self.api_prefix = api_prefix
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        rule = self.faults.match("api", method, scope["path"])
        if rule is not None:
            if rule.hold:
                await asyncio.to_thread(rule.wait_released)
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.drop:
                self._count(method, self._resolve(scope))
                await _drop(scope)
                return
            if rule.status is not None:
                self._count(method, self._resolve(scope))
                await _drain(receive)
                await _send_fault(send, rule.status, head=method == "HEAD")
                return
            if rule.drop_answer:
                await self._forward_then_drop(scope, receive, method)
                return
        counted = False

        async def send_counted(message: dict[str, Any]) -> None:
            # Count before the response leaves, so a client never sees a response whose request
            # is not counted yet (routing has set scope["route"] by now).
            nonlocal counted
            if not counted and message["type"] == "http.response.start":
                counted = True
                self._count(method, getattr(scope.get("route"), "path", None) or scope["path"])
            await send(message)

        await self.app(scope, receive, send_counted)

    async def _forward_then_drop(self, scope: Scope, receive: Any, method: str) -> None:
        """Handle the request in full, then close the connection instead of answering."""

        async def swallow(message: dict[str, Any]) -> None:
            pass

        await self.app(scope, receive, swallow)
        self._count(method, getattr(scope.get("route"), "path", None) or self._resolve(scope))
        await _drop(scope)

    def _count(self, method: str, template: str) -> None:
        if template.startswith(self.api_prefix + "/"):
            template = template[len(self.api_prefix) :]
        self.counter.add("api", method, template)

    def _resolve(self, scope: Scope) -> str:
        """The route template a request would reach (for requests a fault answers early)."""
        path: str = scope["path"]
        method: str = scope["method"]
        for prefix, route in self.routes:
            if not path.startswith(prefix):
                continue
            if route.path_regex.match(path[len(prefix) :]) and method in route.methods:
                return str(route.path)
        return path


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _drop(scope: Scope) -> None:
    """Abort the TCP connection; yield so uvicorn marks the cycle disconnected (no 500)."""
    transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    if transport is None:
        raise RuntimeError("dropping a connection needs the emulator's uvicorn protocol")
    transport.abort()
    for _ in range(3):
        await asyncio.sleep(0)


async def _drain(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _send_fault(send: Any, status: int, *, head: bool) -> None:
    body = json.dumps({"detail": FAULT_DETAIL}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
