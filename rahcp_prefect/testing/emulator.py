"""``HCPEmulator``: the HCP backend API on a local port, over a real S3 server.

    with HCPEmulator() as emu:
        httpx.post(f"{emu.base_url}/auth/token", data={"username": "u", "password": "p"})
        emu.faults.add("data", method="PUT", status=503, count=2)   # next two uploads fail
        emu.faults.add("api", path="/presign$", drop=True)          # next presign: no answer
        emu.request_counts[("api", "POST", "/presign")]             # calls so far

By default the emulator is an HCP namespace, not plain S3 (``namespace_rules``): a write onto an
existing key is a 409 unless the bucket's namespace is versioned or allows overwrites, retained or
held objects cannot be deleted, complete answers its errors as 200 with an error body, parts may
be 1 MiB; ``configure_namespace``/``set_hold`` or the MAPI routes set that up; ``mode="s3"`` is
permissive. ``cache_ttl`` turns on the reference backend's listing cache (``listing_cache``).

Unless ``s3_endpoint`` is given, moto's S3 server runs in-process on a free loopback port and
presigned URLs point at it, so object bytes never pass through the emulator's API. Route
templates of the counts are described in ``counter``, fault rules in ``faults``, the HTTP control
routes (for an emulator in another process) in ``routes_control``.
"""

from __future__ import annotations

import os
import secrets
import ssl
import time
from collections import Counter
from types import TracebackType
from typing import Any

import boto3
import httpx
from botocore.config import Config

from rahcp_prefect.testing.apiserver import ApiServer
from rahcp_prefect.testing.app import API_PREFIX, build_app
from rahcp_prefect.testing.auth import AuthConfig
from rahcp_prefect.testing.context import EmulatorContext
from rahcp_prefect.testing.sigv4 import QueryPresigner
from rahcp_prefect.testing.counter import CountKey, RequestCounter
from rahcp_prefect.testing.faults import FaultInjector
from rahcp_prefect.testing.listing_cache import ListingCache
from rahcp_prefect.testing.metaserver import MetaS3App
from rahcp_prefect.testing.metastore import MetaS3Client, MetaStore
from rahcp_prefect.testing.mapi_store import DEFAULT_COMPLIANCE, NamespaceStore
from rahcp_prefect.testing.namespace_rules import DEFAULT_MODE, HcpRules, retention_until
from rahcp_prefect.testing.s3list import S3Lister
from rahcp_prefect.testing.s3server import API_USER_AGENT, INTERNAL_USER_AGENT, S3Server

WILDCARD_HOSTS = ("0.0.0.0", "::", "")
STORES = ("moto", "metadata")
"""Where the built-in S3 keeps objects: moto (bytes and all) or the metadata-only store."""


def _client_host(host: str) -> str:
    """The address a local client uses to reach a server bound to ``host``."""
    if host in WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class HCPEmulator:
    """A local HCP backend API (FastAPI + uvicorn) in front of moto's S3 server mode."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        s3_endpoint: str | None = None,
        users: dict[str, str] | None = None,
        token_ttl_seconds: float = 28800,
        mapi_enabled: bool = True,
        secret_key: str | None = None,
        s3_port: int = 0,
        s3_public_endpoint: str | None = None,
        s3_access_key: str | None = None,
        s3_secret_key: str | None = None,
        s3_region: str = "us-east-1",
        enforce_presign_expiry: bool = True,
        mode: str = DEFAULT_MODE,
        cache_ttl: float | None = None,
        tls: tuple[str, str] | None = None,
        store: str = "moto",
        s3_tls: tuple[str, str] | None = None,
    ) -> None:
        """Configure (nothing starts until ``start()``).

        ``mode``: ``"hcp"`` enforces HCP's namespace rules on the built-in S3 server (see
        ``namespace_rules``: 409 onto existing keys without versioning or overwrite, 403 for
        retained or held objects, complete's 200-with-error, 1 MiB parts); ``"s3"`` is plain,
        permissive S3 (moto as it is). Settings per bucket come through the MAPI routes or
        ``configure_namespace``. ``cache_ttl``: seconds the API caches listings (HEADs 2.5 times
        as long), as the reference backend does with Redis (120 s / 300 s; see
        ``listing_cache``); None (the default) caches nothing.

        ``store``: ``"moto"`` (the default) keeps objects in moto's S3 server; ``"metadata"``
        keeps each object's key, size, ETag and digests and drops its bytes (``metastore``: a
        million objects fit in memory, GETs answer zeros of the right length), for measuring
        the client at scale. It needs the built-in S3 server (no ``s3_endpoint``).

        ``users`` maps username to password; ``None`` accepts any non-empty credentials.
        ``s3_port`` fixes the built-in S3 server's port. ``s3_public_endpoint`` is the S3 URL
        clients should use in presigned URLs when it differs from the one the emulator reaches
        (e.g. a container host name). ``s3_access_key``/``s3_secret_key`` are for an external
        ``s3_endpoint`` (default: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or "testing").
        ``enforce_presign_expiry``: the built-in S3 answers 403 "Request has expired" to expired
        presigned URLs like real S3 (moto itself ignores ``X-Amz-Expires``).

        ``tls``: ``(certificate PEM, key PEM)``: the API serves HTTPS, and so does the built-in
        S3 on a second port that presigned URLs point at (unless ``s3_public_endpoint`` says
        otherwise); the emulator's own S3 calls stay on the plain port. ``s3_tls``: the built-in
        S3's own ``(certificate PEM, key PEM)`` when it is not the API's (HCP's S3 gateway may
        have a certificate of its own, e.g. from another CA); by default ``tls``.
        """
        self._host = host
        self._port = port
        self._external_s3 = s3_endpoint
        self._s3_port = s3_port
        self._s3_public = s3_public_endpoint
        self._s3_access_key = s3_access_key or os.environ.get("AWS_ACCESS_KEY_ID", "testing")
        self._s3_secret_key = s3_secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
        self._s3_region = s3_region
        self._enforce_presign_expiry = enforce_presign_expiry
        self._mapi_enabled = mapi_enabled
        self._auth = AuthConfig(
            secret_key=secret_key or secrets.token_hex(32),
            token_ttl_seconds=token_ttl_seconds,
            users=dict(users) if users is not None else None,
        )
        if store not in STORES:
            raise ValueError(f"emulator store {store!r}: expected one of {', '.join(STORES)}")
        if store == "metadata" and s3_endpoint is not None:
            raise ValueError("emulator store 'metadata' serves its own S3: give no s3_endpoint")
        self._meta = MetaStore() if store == "metadata" else None
        self._namespaces = NamespaceStore()
        self._rules = HcpRules(self._namespaces, mode, store=self._meta)
        self._cache = ListingCache(cache_ttl)
        self._faults = FaultInjector(data_plane_available=s3_endpoint is None)
        self._counter = RequestCounter()
        self._s3_server: S3Server | None = None
        self._api_server: ApiServer | None = None
        self._s3_client: Any = None
        self._api_client: Any = None
        self._s3_endpoint: str | None = None
        self._tls = tls
        self._s3_tls = s3_tls or tls

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HCPEmulator:
        """Start S3 (unless external) and the API; return once both answer."""
        if self._api_server is not None:
            return self
        try:
            if self._external_s3 is None:
                self._s3_server = S3Server(
                    self._faults,
                    self._counter,
                    host=self._host,
                    port=self._s3_port,
                    enforce_presign_expiry=self._enforce_presign_expiry,
                    rules=self._rules,
                    tls=_server_tls(self._s3_tls),
                    app=self._meta_app(),
                )
                self._s3_server.start()
                self._s3_endpoint = f"http://{_client_host(self._host)}:{self._s3_server.port}"
                if self._s3_server.tls_port is not None and not self._s3_public:
                    self._s3_public = f"https://{_client_host(self._host)}:{self._s3_server.tls_port}"
            else:
                self._s3_endpoint = self._external_s3.rstrip("/")
            self._s3_client = self._make_client(self._s3_endpoint)
            api_client = self._api_client = self._make_client(self._s3_endpoint, API_USER_AGENT)
            if self._meta is not None:
                boto = self._s3_client
                self._s3_client = MetaS3Client(self._meta, boto, self._rules, operator=True)
                api_client = self._api_client = MetaS3Client(self._meta, boto, self._rules)
            signer = api_client
            signing_endpoint = self._s3_endpoint
            if self._s3_public and self._s3_public.rstrip("/") != self._s3_endpoint:
                signing_endpoint = self._s3_public.rstrip("/")
                signer = self._make_client(signing_endpoint)
            ctx = EmulatorContext(
                s3=api_client,
                signer=signer,
                presigner=QueryPresigner(
                    signing_endpoint, self._s3_access_key, self._s3_secret_key, self._s3_region
                ),
                auth=self._auth,
                namespaces=self._namespaces,
                rules=self._rules,
                cache=self._cache,
                faults=self._faults,
                counter=self._counter,
                mapi_enabled=self._mapi_enabled,
                lister=None if self._meta is not None else S3Lister(
                    QueryPresigner(
                        self._s3_endpoint, self._s3_access_key, self._s3_secret_key, self._s3_region
                    ),
                    self._s3_endpoint,
                    INTERNAL_USER_AGENT,
                ),
            )
            self._api_server = ApiServer(build_app(ctx), host=self._host, port=self._port, tls=self._tls)
            self._api_server.start()
            self._wait_ready()
            self._counter.reset()
        except BaseException:
            self.stop()
            raise
        return self

    def _meta_app(self) -> Any:
        """The metadata store's data plane (None: moto's)."""
        if self._meta is None:
            return None
        return MetaS3App(self._meta, MetaS3Client(self._meta, None, self._rules, operator=True))

    def stop(self) -> None:
        """Stop both servers (idempotent)."""
        if self._api_server is not None:
            self._api_server.stop()
            self._api_server = None
        if self._s3_server is not None:
            self._s3_server.stop()
            self._s3_server = None

    def __enter__(self) -> HCPEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _make_client(self, endpoint: str, marker: str = "") -> Any:
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            max_pool_connections=64,
            user_agent_extra=f"{INTERNAL_USER_AGENT} {marker}".strip(),
            connect_timeout=10,
            read_timeout=60,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=self._s3_access_key,
            aws_secret_access_key=self._s3_secret_key,
            region_name=self._s3_region,
            config=config,
        )

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, verify=False) as http:  # its own certificate
            while True:
                try:
                    if http.get(f"{self.root_url}/liveness").status_code == 200:
                        self._s3_client.list_buckets()
                        return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.05)

    # -- addresses ---------------------------------------------------------------------------

    def _require_started(self) -> ApiServer:
        if self._api_server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._api_server

    @property
    def root_url(self) -> str:
        """``http(s)://host:port`` (health probes, ``/_emulator`` control routes)."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{_client_host(self._host)}:{self._require_started().port}"

    @property
    def base_url(self) -> str:
        """The API base URL clients use, ``http://host:port/api/v1``."""
        return self.root_url + API_PREFIX

    @property
    def s3_endpoint(self) -> str:
        """The S3 server's URL (the one presigned URLs point at unless a public one is set)."""
        self._require_started()
        assert self._s3_endpoint is not None
        return self._s3_public.rstrip("/") if self._s3_public else self._s3_endpoint

    # -- test helpers ------------------------------------------------------------------------

    @property
    def faults(self) -> FaultInjector:
        """Fault rules for the ``"api"`` and ``"data"`` planes."""
        return self._faults

    @property
    def s3(self) -> Any:
        """A boto3 S3 client on the S3 server, for assertions and seeding (its calls count as
        "backend"): the operator's hand, never refused by HCP's rules (retention, 409s)."""
        self._require_started()
        return self._s3_client

    @property
    def api_s3(self) -> Any:
        """The boto3 client the API's routes call S3 with (HCP's rules apply to it; ``s3`` is
        the operator's hand that they never refuse). Tests patch it to make a route fail."""
        self._require_started()
        return self._api_client

    @property
    def secret_key(self) -> str:
        """The JWT signing key, so tests can mint special tokens (no ``exp``, no ``sub``...)."""
        return self._auth.secret_key

    def issue_token(
        self, username: str, tenant: str | None = None, ttl: float | None = None
    ) -> str:
        """A valid bearer token without a login round trip."""
        return self._auth.issue(username, tenant, ttl)

    def create_bucket(self, name: str) -> str:
        """Create a bucket directly on S3; returns its name."""
        self.s3.create_bucket(Bucket=name)
        return name

    def stored(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """``{key: body}`` of every object under ``prefix``, read directly from S3 (every page)."""
        found: dict[str, bytes] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found

    @property
    def mode(self) -> str:
        """``"hcp"`` (HCP's namespace rules enforced) or ``"s3"`` (permissive); settable."""
        return self._rules.mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._rules.mode = value

    def configure_namespace(
        self,
        bucket: str,
        *,
        versioning: bool | None = None,
        overwrite: bool | None = None,
        retention: str | None = None,
        tenant: str = "emulator",
    ) -> None:
        """Set a bucket's namespace settings as the MAPI routes do (test shortcut): versioning
        on/off, the overwrite option, the default retention (``"+30s"``, ``"-1"``, ``"0"``)."""
        retention_until(retention, 0.0)  # a value HCP would refuse raises here
        self._namespaces.ensure(tenant, bucket)
        owner = self._namespaces.tenant_of(bucket)
        assert owner is not None
        changes: dict[str, Any] = {}
        if versioning is not None:
            changes["versioningSettings"] = {"enabled": versioning}
        if overwrite is not None:
            changes["overwriteEnabled"] = overwrite
        if retention is not None:
            compliance = dict(self._namespaces.get(owner, bucket) or {}).get("complianceSettings")
            changes["complianceSettings"] = {**(compliance or DEFAULT_COMPLIANCE), "retentionDefault": retention}
        self._namespaces.update(owner, bucket, changes)

    def set_hold(self, bucket: str, key: str, held: bool = True) -> None:
        """Put an object on hold (or release it), as the ``.../hold`` route does."""
        self._rules.set_hold(bucket, key, held)

    @property
    def cache(self) -> ListingCache:
        """The API's listing/HEAD cache (off unless ``cache_ttl`` was given)."""
        return self._cache

    @property
    def request_counts(self) -> Counter[CountKey]:
        """Counts of requests by ``(plane, method, route)``; see ``counter`` module."""
        return self._counter.snapshot()

    def reset_counts(self) -> None:
        self._counter.reset()


def _server_tls(pair: tuple[str, str] | None) -> ssl.SSLContext | None:
    """A server's TLS context from ``(certificate PEM, key PEM)`` (None: plain HTTP)."""
    if pair is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*pair)
    return context
