"""``HCPClient``: login, the control-plane request loop (retries, re-login, errors), and the
entry points to S3 operations, MAPI and the data plane.

The control plane runs on one pooled keep-alive ``httpx.AsyncClient``; file bytes never pass
through it (see ``dataplane``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from rahcp_prefect import defaults

from .config import DEFAULT_ENDPOINT, ClientConfig, TransferSettings
from .dataplane import DataPlane
from .errors import (
    RETRYABLE_STATUSES,
    AuthenticationError,
    HCPError,
    RetryableError,
    error_for_status,
)
from .logsetup import apply_log_level_from_env
from .redaction import redact_body, redact_text
from .retry import THROTTLE_STATUSES, RetryBudget, parse_retry_after
from .tls import certificate_error, certificate_problem, ssl_context
from .tracing import span

if TYPE_CHECKING:
    from .mapi import MapiOps
    from .s3 import S3Ops

logger = logging.getLogger(__name__)

RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)
"""Connect/read/write failures, timeouts and dropped connections: retried like a 503."""

USER_AGENT = "rahcp-prefect/0.1"


class HCPClient:
    """Async client for the HCP backend API.

    Use it as an async context manager (logs in on entry, closes pools on exit)::

        async with HCPClient(endpoint="http://localhost:8000/api/v1", username="u",
                             password="p", tenant="dev-ai") as client:
            etag = await client.s3.upload("bucket", "key", Path("file.bin"))

    A request answered 401 logs in again once and is retried; 408/429/500/503/504 and transport
    errors are retried with exponential backoff up to ``max_retries``.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        username: str = "",
        password: str | SecretStr = "",
        tenant: str | None = None,
        timeout: float = defaults.TIMEOUT,
        max_retries: int = defaults.MAX_RETRIES,
        retry_base_delay: float = defaults.RETRY_BASE_DELAY,
        multipart_threshold: int = defaults.MULTIPART_THRESHOLD,
        multipart_chunk: int = defaults.MULTIPART_CHUNK,
        multipart_concurrency: int = defaults.MULTIPART_CONCURRENCY,
        verify_ssl: bool = True,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **settings: Any,
    ) -> None:
        """The parameters of the SDK spec's table; ``settings`` any other ``ClientConfig`` field
        (``ca_bundle``, ``complete_timeout_per_gib``, ``max_connections``, ``retry_deadline``,
        ``max_bandwidth``...); an unknown name or a bad value raises ``ValueError`` naming it."""
        self.config = ClientConfig.build(
            endpoint=endpoint,
            username=username,
            password=password,
            tenant=tenant,
            timeout=timeout,
            max_retries=max_retries,
            retry_base_delay=retry_base_delay,
            multipart_threshold=multipart_threshold,
            multipart_chunk=multipart_chunk,
            multipart_concurrency=multipart_concurrency,
            verify_ssl=verify_ssl,
            **settings,
        )
        apply_log_level_from_env()
        self._http = httpx.AsyncClient(
            base_url=self.config.endpoint,
            # Waiting for a free pooled connection is not a failure: no pool timeout.
            timeout=httpx.Timeout(self.config.timeout, pool=None),
            verify=self.ssl_context,
            transport=transport,
            limits=httpx.Limits(
                max_connections=self.config.max_connections,
                max_keepalive_connections=min(self.config.max_connections, 32),
            ),
            headers={"User-Agent": USER_AGENT},
        )
        self._token: str | None = None
        self._token_generation = 0
        self._login_lock = asyncio.Lock()
        self._s3: S3Ops | None = None
        self._mapi: MapiOps | None = None
        self._data: DataPlane | None = None
        self.api_retries = 0
        """API requests (login included) repeated after a retryable failure, over this client's
        life; the data plane counts its own in ``data.retries``."""
        self.api_throttled = 0
        """API answers that said the store is overloaded (429, 503), over this client's life;
        the data plane counts its own in ``data.throttled``."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> HCPClient:
        """A client configured from ``HCP_ENDPOINT``, ``HCP_USERNAME``, ``HCP_PASSWORD``,
        ``HCP_TENANT``, ``HCP_TIMEOUT``, ``HCP_MAX_RETRIES``, ``HCP_RETRY_BASE_DELAY``,
        ``HCP_MULTIPART_THRESHOLD``, ``HCP_MULTIPART_CHUNK``, ``HCP_MULTIPART_CONCURRENCY``,
        ``HCP_VERIFY_SSL`` (and ``HCP_MAX_CONNECTIONS``, ``HCP_COMPLETE_TIMEOUT_PER_GIB``);
        keyword ``overrides`` win."""
        return cls.from_config(ClientConfig.from_env(environ, **overrides), transport=transport)

    @classmethod
    def from_config(
        cls, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> HCPClient:
        """A client for an already validated ``ClientConfig``."""
        values = config.model_dump()
        values["password"] = config.password
        return cls(**values, transport=transport)

    def __repr__(self) -> str:
        tenant = f", tenant={self.config.tenant!r}" if self.config.tenant else ""
        return f"HCPClient(endpoint={self.config.endpoint!r}, username={self.config.username!r}{tenant})"

    # -- properties ------------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The current bearer token (None before login). A secret: never log it."""
        return self._token

    def use_token(self, token: str) -> None:
        """Authenticate with the bearer token of an earlier login of the same credentials, so
        that entering the client sends no login; when the token has expired, the first 401
        logs in again (as with any token)."""
        self._token = token

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context both planes use (``verify_ssl``, ``ca_bundle``; see ``tls``)."""
        return ssl_context(self.config.verify_ssl, self.config.ca_bundle)

    @property
    def transfer_settings(self) -> TransferSettings:
        """Data-transfer settings for the bulk engine."""
        return self.config.transfer_settings()

    @property
    def s3(self) -> S3Ops:
        """S3 operations (created on first use)."""
        if self._s3 is None:
            from .s3 import S3Ops

            self._s3 = S3Ops(self)
        return self._s3

    @property
    def mapi(self) -> MapiOps:
        """MAPI namespace administration (created on first use)."""
        if self._mapi is None:
            from .mapi import MapiOps

            self._mapi = MapiOps(self)
        return self._mapi

    @property
    def data(self) -> DataPlane:
        """The data plane: PUT/GET on presigned URLs over a pooled aiohttp session."""
        if self._data is None:
            self._data = DataPlane(
                timeout=self.config.timeout,
                max_retries=self.config.max_retries,
                retry_base_delay=self.config.retry_base_delay,
                ssl_context=self.ssl_context,
                max_connections=self.config.max_connections,
                retry_deadline=self.config.retry_deadline,
                max_bandwidth=self.config.max_bandwidth,
            )
        return self._data

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> HCPClient:
        """Log in (unless ``use_token`` gave a token from an earlier login)."""
        if self._token is not None:
            return self
        try:
            await self.login()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the control-plane pool and the data-plane session."""
        try:
            if self._data is not None:
                await self._data.aclose()
        finally:
            await self._http.aclose()

    # -- authentication --------------------------------------------------------------------

    async def login(self) -> None:
        """``POST /auth/token`` (form-encoded); any failure raises ``AuthenticationError``.

        Transient failures (408/429/5xx-retryable, transport errors) are retried like any request
        before giving up with ``AuthenticationError("Login failed: <status>")``.
        """
        form = {
            "username": self.config.username,
            "password": self.config.password.get_secret_value(),
        }
        if self.config.tenant:
            form["tenant"] = self.config.tenant
        budget = self._budget()
        while True:
            started = perf_counter()
            with span("HCP POST", {"http.method": "POST", "url.path": "/auth/token"}) as current:
                try:
                    response = await self._http.post("/auth/token", data=form)
                except RETRYABLE_TRANSPORT_ERRORS as exc:
                    self._raise_if_certificate(exc)
                    if await self._wait("POST", "/auth/token", type(exc).__name__, budget):
                        continue
                    message = f"Login failed: {type(exc).__name__}: could not reach {self._login_url()}"
                    logger.error("%s", message)
                    raise AuthenticationError(message) from exc
                current.set_attribute("http.status_code", response.status_code)
            status = response.status_code
            self._log_request("POST", "/auth/token", status, started)
            if status in RETRYABLE_STATUSES and await self._wait(
                "POST", "/auth/token", str(status), budget, response
            ):
                continue
            token = _access_token(response) if status == 200 else None
            if token is None:
                message = f"Login failed: {status}"
                if status == 404:
                    message += _not_found_hint(self.config.endpoint, self._login_url())
                logger.error("%s", message)
                raise AuthenticationError(message, status)
            self._token = token
            self._token_generation += 1
            logger.info(
                "Logged in to %s as %r%s",
                urlsplit(self.config.endpoint).netloc,
                self.config.username,
                f" (tenant {self.config.tenant})" if self.config.tenant else "",
            )
            return

    def _login_url(self) -> str:
        """The login URL as tried (for errors: the endpoint carries no secret, redacted anyway)."""
        return self._redact(f"{self.config.endpoint.rstrip('/')}/auth/token")

    async def _relogin(self, generation: int) -> None:
        """Log in again unless another request already did since ``generation``."""
        async with self._login_lock:
            if self._token_generation == generation:
                logger.info("Token rejected (401): logging in again")
                await self.login()

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send an authenticated API request; return the 2xx/3xx response or raise ``HCPError``.

        ``path`` is relative to the endpoint and already percent-encoded (see ``keys``).
        ``timeout`` replaces the configured one for this request (each attempt).
        """
        limits = httpx.Timeout(timeout, pool=None) if timeout is not None else httpx.USE_CLIENT_DEFAULT
        if self._token is None:
            async with self._login_lock:
                if self._token is None:
                    await self.login()
        budget = self._budget()
        relogged = False
        while True:
            generation = self._token_generation
            started = perf_counter()
            with span(f"HCP {method}", {"http.method": method, "url.path": path}) as current:
                try:
                    response = await self._http.request(
                        method,
                        path,
                        params=params,
                        json=json,
                        headers={"Authorization": f"Bearer {self._token}"},
                        timeout=limits,
                    )
                except RETRYABLE_TRANSPORT_ERRORS as exc:
                    self._raise_if_certificate(exc)
                    reason = _describe(exc, self._redact)
                    if await self._wait(method, path, reason, budget):
                        continue
                    logger.error("%s %s failed after %d attempts: %s", method, path, budget.tries + 1, reason)
                    raise RetryableError(f"{method} {path}: {reason}") from None
                current.set_attribute("http.status_code", response.status_code)
            status = response.status_code
            self._log_request(method, path, status, started)
            if status < 400:
                return response
            message = self._error_message(response)
            if status == 401 and not relogged:
                relogged = True
                await self._relogin(generation)
                continue
            if status in RETRYABLE_STATUSES and await self._wait(
                method, path, f"{status} {message}", budget, response
            ):
                continue
            level = logging.DEBUG if status == 404 else logging.INFO if status == 409 else logging.ERROR
            logger.log(level, "%s %s -> %d %s", method, path, status, message)
            raise error_for_status(status, message)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """``request`` and decode the JSON body (None for an empty body)."""
        response = await self.request(method, path, params=params, json=json, timeout=timeout)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise HCPError(f"{method} {path}: response is not JSON", response.status_code) from None

    # -- helpers ---------------------------------------------------------------------------

    def _raise_if_certificate(self, exc: Exception) -> None:
        """A certificate that fails verification is no transient failure: raise
        ``CertificateError`` (naming the host and the fix) instead of retrying."""
        problem = certificate_problem(exc)
        if problem is not None:
            error = certificate_error(urlsplit(self.config.endpoint).netloc, problem, "the HCP API")
            logger.error("%s", error)
            raise error from None

    def _redact(self, text: str) -> str:
        return redact_text(text, (self.config.password.get_secret_value(), self._token))

    def _error_message(self, response: httpx.Response) -> str:
        """The response's ``detail`` (or reason phrase for empty bodies), redacted, <= 200 chars."""
        secrets = (self.config.password.get_secret_value(), self._token)
        text = redact_body(response.text, secrets) if response.content else ""
        return text or response.reason_phrase or f"HTTP {response.status_code}"

    def _budget(self) -> RetryBudget:
        config = self.config
        return RetryBudget(config.max_retries, config.retry_base_delay, config.retry_deadline)

    async def _wait(
        self, method: str, path: str, reason: str, budget: RetryBudget, response: httpx.Response | None = None
    ) -> bool:
        """Sleep the backoff before the next attempt and return True, or False when ``budget``
        is spent. Throttling (429, 503) is retried for up to ``retry_deadline`` seconds."""
        throttled = response is not None and response.status_code in THROTTLE_STATUSES
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        if throttled:
            self.api_throttled += 1
        delay = budget.next_delay(throttled, retry_after)
        if delay is None:
            return False
        logger.warning(
            "%s %s: %s; retry %s in %.2f s",
            method,
            path,
            reason,
            f"{budget.tries} (throttled)" if throttled else f"{budget.tries}/{self.config.max_retries}",
            delay,
        )
        self.api_retries += 1
        await asyncio.sleep(delay)
        return True

    @staticmethod
    def _log_request(method: str, path: str, status: int, started: float) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (%.1f ms)", method, path, status, (perf_counter() - started) * 1000
            )


def _access_token(response: httpx.Response) -> str | None:
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None


def _describe(exc: Exception, redact: Callable[[str], str]) -> str:
    """A transport error as ``Name: text`` (redacted, <= 200 chars); httpx often has no text."""
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _not_found_hint(endpoint: str, tried: str) -> str:
    """Why a login can 404: most often an endpoint given without its ``/api/v1`` prefix."""
    if not urlsplit(endpoint).path.rstrip("/").endswith("/api/v1"):
        return f" at {tried}: the endpoint must be the API base URL, add /api/v1 ({endpoint.rstrip('/')}/api/v1)"
    return f" at {tried}: no login route there (is this the HCP backend API?)"
