"""The data plane: moto's S3 server mode, in-process, behind a thin fault/count WSGI middleware.

Presigned URLs point here, so object bytes never pass through the emulator's API. The server is
werkzeug's threaded server with moto's request handler, what ``moto.server`` runs, except that
every request goes straight to moto's S3 app (``s3dispatch``: moto looks for the service of each
request, half the CPU of a small GET); the middleware adds one dict lookup and a counter increment per
request while no data-plane fault is set. CompleteMultipartUpload is the emulator's own
(``assembly``): it joins the parts where moto's copies the object four times. HCP's namespace
rules (409 onto existing keys, retention and holds, complete's 200-with-error, 1 MiB parts) are
applied here (``namespace_rules``), so presigned PUTs meet them as much as the API's routes. Note that moto keeps its state in
process-global backends: two emulators in one process share their S3 buckets.
"""

from __future__ import annotations

import io
import json
import socket
import ssl
from http import HTTPStatus
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from rahcp_prefect.testing import assembly, moto_memory
from rahcp_prefect.testing.s3dispatch import S3OnlyDispatcher
from rahcp_prefect.testing.counter import RequestCounter, s3_route
from rahcp_prefect.testing.expiry import expired_body, expired_presign
from rahcp_prefect.testing.faults import FAULT_DETAIL, FaultInjector
from rahcp_prefect.testing.integrity import damaged_stream, digest_error, flip_byte
from rahcp_prefect.testing.namespace_rules import HCP_MIN_PART, HcpRules, Refusal
from rahcp_prefect.testing.ranges import serve_range
from rahcp_prefect.testing.storage import KEY_TOO_LONG, MAX_KEY_BYTES

# The emulator tags its own boto3 calls with this user-agent marker: they are counted as
# plane "backend" and never get data-plane faults (those are meant for clients).
INTERNAL_USER_AGENT = "rahcp-emulator-internal"
# The API routes' boto3 calls carry this marker too: they are "backend" calls, but HCP's
# namespace rules apply to them (only the test-helper client is the operator's hand).
API_USER_AGENT = "rahcp-emulator-api"
# CompleteMultipartUpload errors HCP answers as 200 OK with the error in the body.
COMPLETE_ERRORS_AS_200 = (b"<Code>EntityTooSmall</Code>", b"<Code>InvalidPart</Code>", b"<Code>InvalidPartOrder</Code>")

HTTP_REASONS = {s.value: s.phrase for s in HTTPStatus}
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _QuietRequestHandler(MotoRequestHandler):
    """moto's handler without per-request access logs (they would print presigned signatures),
    with TCP_NODELAY so a response written in parts is not held back by a delayed ACK."""

    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def connection_dropped(
        self, error: BaseException, environ: dict[str, Any] | None = None
    ) -> None:
        # Never read on after a drop: the rest of a request body may sit in the read buffer.
        self.close_connection = True


class _KeepAliveHandler(_QuietRequestHandler):
    """Keeps HTTP/1.1 connections open between requests, as real S3 and HCP do.

    werkzeug's dev server closes every connection because it cannot know whether the app read
    the whole request body; ``DataPlaneMiddleware`` reads what the app left, so the next request
    line is always where the socket stands. Chunked request bodies still close the connection.
    """

    _kept_alive = False

    def setup(self) -> None:
        super().setup()
        self.rfile = _AfterResponse(self.rfile, self)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        self._kept_alive = False
        super().handle_one_request()

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and self._may_keep_alive():
            # The body is read by now (DataPlaneMiddleware drained it before the response).
            self._kept_alive = True
            return
        super().send_header(keyword, value)

    def _may_keep_alive(self) -> bool:
        return (
            self.request_version == "HTTP/1.1"
            and "Transfer-Encoding" not in self.headers
            and self.headers.get("Connection", "").lower() != "close"
        )


class _AfterResponse:
    """The handler's socket reader. After a kept-alive response, werkzeug still "discards" what
    the socket holds with ``read(10_000_000)``, which would swallow (or wait for) the client's
    next request: such reads answer nothing. Request lines are read with ``readline``."""

    def __init__(self, raw: Any, handler: _KeepAliveHandler) -> None:
        self._raw = raw
        self._handler = handler

    def read(self, size: int = -1) -> bytes:
        if self._handler._kept_alive:
            return b""
        return self._raw.read(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _BodyReader(io.RawIOBase):
    """The request body, ``length`` bytes of the socket, and no more; ``drain`` reads the rest."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        count = self._stream.readinto(view) or 0
        self._left -= count
        return count

    def drain(self) -> None:
        while self._left > 0:
            chunk = self._stream.read(min(self._left, 1 << 20))
            if not chunk:
                break
            self._left -= len(chunk)


class DataPlaneMiddleware:
    """Counts every S3 request, applies data-plane fault rules and (optionally) presigned-URL
    expiry before moto sees it."""

    def __init__(
        self,
        app: WSGIApp,
        faults: FaultInjector,
        counter: RequestCounter,
        *,
        enforce_presign_expiry: bool = True,
        rules: HcpRules | None = None,
    ) -> None:
        self.app = app
        self.faults = faults
        self.counter = counter
        self.enforce_presign_expiry = enforce_presign_expiry
        self.rules = rules

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method: str = environ["REQUEST_METHOD"]
        # WSGI carries the decoded path as latin-1 code points of the UTF-8 bytes.
        raw_path = environ.get("PATH_INFO", "").encode("latin-1")
        path = raw_path.decode("utf-8", "replace")
        internal = INTERNAL_USER_AGENT in environ.get("HTTP_USER_AGENT", "")
        plane = "backend" if internal else "data"
        query = environ.get("QUERY_STRING", "")
        self.counter.add(plane, method, s3_route(path, query))
        if self.rules is not None:
            operator = internal and API_USER_AGENT not in environ.get("HTTP_USER_AGENT", "")
            answer, done = self._ruled(environ, start_response, method, path, query, operator)
            if answer is not None:
                return answer
            if done is not None:
                start_response = _on_success(start_response, done)
        if internal:
            return _with_whole_body_read(self.app, environ, start_response)
        rule = self.faults.match("data", method, path)
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            if rule.drop or (rule.hold and not rule.hold_request()):
                _drop(environ)
            if rule.status is not None and rule.code is not None:
                body = s3_error_body(rule.code, FAULT_DETAIL)
                return _answer(environ, start_response, rule.status, "application/xml", body)
            if rule.status is not None:
                body = json.dumps({"detail": FAULT_DETAIL}).encode()
                return _answer(environ, start_response, rule.status, "application/json", body)
            if rule.drop_answer:
                _forward_then_drop(self.app, environ)
        if len(raw_path) > MAX_KEY_BYTES and _key_bytes(raw_path) > MAX_KEY_BYTES:
            return _answer(environ, start_response, 400, "application/xml", _key_too_long_body())
        if self.enforce_presign_expiry:
            expired = expired_presign(query)
            if expired is not None:
                body = expired_body(*expired)
                return _answer(environ, start_response, 403, "application/xml", body)
        damage = rule is not None and rule.damage
        if method == "PUT" and (damage or "HTTP_CONTENT_MD5" in environ):
            refused = _checked_body(environ, damage)
            if refused is not None:
                return _answer(environ, start_response, 400, "application/xml", refused)
        if method == "GET" and "HTTP_RANGE" in environ:
            ranged = serve_range(environ, path, start_response)
            if ranged is not None:
                return damaged_stream(ranged) if damage else ranged
        if damage and method == "GET":
            return _damaged_answer(self.app, environ, start_response)
        return _with_whole_body_read(self.app, environ, start_response)


    def _ruled(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        path: str,
        query: str,
        operator: bool,
    ) -> tuple[Iterable[bytes] | None, Callable[[], None] | None]:
        """HCP's namespace rules (``namespace_rules``) for one request: an answer (a refusal,
        or a complete served here), else what to record once the request succeeds."""
        rules = self.rules
        assert rules is not None
        bucket, _, key = path.lstrip("/").partition("/")
        if not bucket:
            return None, None
        names = {part.split("=", 1)[0] for part in query.split("&") if part}
        sub = {n for n in names if not n.lower().startswith("x-amz-")}
        enforcing = rules.enforcing and not operator
        if not key:
            if method == "DELETE" and not sub:
                return None, lambda: rules.bucket_deleted(bucket)
            return None, None
        refusal: Refusal | None = None
        if method == "PUT" and not sub:
            refusal = rules.write_refusal(bucket, key) if enforcing else None
            if refusal is None:
                return None, lambda: rules.stored(bucket, key)
        elif method == "POST" and "uploadId" in names:
            upload_id = parse_qs(query).get("uploadId", [""])[0]
            # An unknown upload is moto's NoSuchUpload (404) first, as on S3 and HCP.
            live = enforcing and rules.upload_exists(bucket, upload_id)
            refusal = rules.write_refusal(bucket, key) if live else None
            if refusal is None:
                minimum = HCP_MIN_PART if rules.enforcing else assembly.S3_UPLOAD_PART_MIN_SIZE
                token = assembly.part_minimum.set(minimum)
                try:
                    answer = _completed(
                        self.app, environ, start_response, lambda: rules.stored(bucket, key), rules.enforcing
                    )
                finally:
                    assembly.part_minimum.reset(token)
                return answer, None
        elif method == "DELETE" and sub <= {"versionId"} and enforcing:
            refusal = rules.delete_refusal(bucket, key)
        if refusal is not None:
            return _answer(environ, start_response, refusal.status, "application/xml", refusal.xml()), None
        return None, None


def _on_success(start_response: StartResponse, done: Callable[[], None]) -> StartResponse:
    """``start_response`` that calls ``done`` when the answer is 2xx (moto has changed its
    state by the time it answers)."""

    def recording_start(line: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        if line.startswith("2"):
            done()
        return start_response(line, headers, *args)

    return recording_start


def _completed(
    app: WSGIApp,
    environ: dict[str, Any],
    start_response: StartResponse,
    done: Callable[[], None],
    hcp: bool,
) -> Iterable[bytes]:
    """CompleteMultipartUpload: record the stored object; in HCP mode answer EntityTooSmall,
    InvalidPart and InvalidPartOrder as 200 OK with the error body, as HCP does."""
    held: list[Any] = []

    def holding_start(line: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        held.append((line, headers))
        return lambda data: None

    result = _with_whole_body_read(app, environ, holding_start)
    body = b"".join(result)  # a small XML answer: the parts are joined in place (assembly)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    line, headers = held[0]
    if line.startswith("2"):
        done()
    elif hcp and line.startswith("400") and any(code in body for code in COMPLETE_ERRORS_AS_200):
        line = "200 OK"
    start_response(line, headers)
    return [body]


def _key_bytes(raw_path: bytes) -> int:
    """The length of the object key in a path-style ``/bucket/key`` path, in bytes."""
    parts = raw_path.split(b"/", 2)
    return len(parts[2]) if len(parts) == 3 else 0


def _key_too_long_body() -> bytes:
    """S3's XML error for a key over 1,024 bytes (moto stores such keys)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>KeyTooLongError</Code><Message>{KEY_TOO_LONG}</Message>"
        f"<MaxSizeAllowed>{MAX_KEY_BYTES}</MaxSizeAllowed></Error>"
    ).encode()


def _with_whole_body_read(app: WSGIApp, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Run ``app`` and then read whatever it left of the body, so the connection can be reused."""
    if "HTTP_TRANSFER_ENCODING" in environ or environ.get("wsgi.input_terminated"):
        return app(environ, start_response)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = _BodyReader(environ["wsgi.input"], length)
    environ["wsgi.input"] = body
    result = app(environ, start_response)
    body.drain()
    return result


def _checked_body(environ: dict[str, Any], damage: bool) -> bytes | None:
    """Read the PUT body (flipping a byte when ``damage``) and check its ``Content-MD5`` as S3
    does; returns S3's XML error when it does not match, else hands moto the body read."""
    if "HTTP_TRANSFER_ENCODING" in environ:
        return None  # not a body the data plane sends (S3 refuses chunked PUTs anyway)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = bytearray(length)
    view = memoryview(body)
    got = 0
    while got < length:
        count = environ["wsgi.input"].readinto(view[got:])
        if not count:
            del body[got:]  # the client went away; moto answers the short body as usual
            break
        got += count
    if damage:
        body = flip_byte(body)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    header = environ.get("HTTP_CONTENT_MD5")
    if header is None:
        return None
    error = digest_error(header, body)
    return None if error is None else error[1]


def _damaged_answer(app: WSGIApp, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """moto's answer with one byte of a 2xx body flipped (same length, same headers)."""
    status: list[str] = []

    def recording_start(line: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        status.append(line)
        return start_response(line, headers, *args)

    result = _with_whole_body_read(app, environ, recording_start)
    chunks = list(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    if status and status[0].startswith("2"):
        return list(damaged_stream(chunks))
    return chunks


def s3_error_body(code: str, message: str) -> bytes:
    """S3's XML error body with ``code`` (e.g. ``SlowDown``)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()


def _answer(
    environ: dict[str, Any], start_response: StartResponse, status: int, ctype: str, body: bytes
) -> Iterable[bytes]:
    """Answer without moto: read the request body first, omit the body for HEAD."""
    _drain(environ)
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
    start_response(f"{status} {HTTP_REASONS.get(status, 'Error')}", headers)
    return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]


def _drop(environ: dict[str, Any]) -> None:
    """Close the client socket without a response; werkzeug treats the error as a dropped client."""
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("connection dropped by an injected fault")


def _forward_then_drop(app: WSGIApp, environ: dict[str, Any]) -> None:
    """Let moto handle the request in full, then drop the connection instead of the answer."""
    result = _with_whole_body_read(app, environ, lambda *args, **kwargs: (lambda data: None))
    try:
        for _chunk in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    _drop(environ)


def _drain(environ: dict[str, Any]) -> None:
    """Read the request body so the client can read our early answer instead of a reset."""
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    stream = environ["wsgi.input"]
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        remaining -= len(chunk)


class S3Server:
    """moto's S3 in server mode on a loopback port, run in a daemon thread."""

    def __init__(
        self,
        faults: FaultInjector,
        counter: RequestCounter,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        enforce_presign_expiry: bool = True,
        rules: HcpRules | None = None,
        tls: ssl.SSLContext | None = None,
        app: WSGIApp | None = None,
    ) -> None:
        """``tls``: a server context; with it a second listener serves the same S3 over HTTPS
        (the emulator's own calls stay on the plain one). ``app``: the S3 behind the middleware
        (default moto's; ``metaserver.MetaS3App``)."""
        assembly.install()
        moto_memory.install()
        self._app = DataPlaneMiddleware(
            app or S3OnlyDispatcher(),
            faults,
            counter,
            enforce_presign_expiry=enforce_presign_expiry,
            rules=rules,
        )
        self._host = host
        self._port = port
        self._tls = tls
        self._server: BaseWSGIServer | None = None
        self._tls_server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._server = self._serve(None)
        if self._tls is not None:
            self._tls_server = self._serve(self._tls)

    def _serve(self, tls: ssl.SSLContext | None) -> BaseWSGIServer:
        """One listener (plain, or TLS with ``tls``) on the same app, in its own thread."""
        server = make_server(
            self._host,
            self._port if tls is None else 0,
            self._app,  # type: ignore[arg-type]
            threaded=True,
            request_handler=_KeepAliveHandler,
            ssl_context=tls,
        )
        thread = threading.Thread(target=server.serve_forever, name="hcp-emulator-s3", daemon=True)
        thread.start()
        self._threads.append(thread)
        return server

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (None without ``tls``): what presigned URLs point at."""
        return int(self._tls_server.server_address[1]) if self._tls_server is not None else None

    def stop(self) -> None:
        for server in (self._server, self._tls_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = self._tls_server = None
        self._threads = []
