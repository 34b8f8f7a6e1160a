"""Choosing a backend, and bad targets: each fails at once, clearly, with no password in it."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import pytest

from rahcp_prefect.tracker import (
    PostgresTracker,
    SqliteTracker,
    TrackerConfigError,
    TrackerConnectionError,
    create_tracker,
    mask_dsn,
)
from rahcp_prefect.tracker.dsn import redact
from rahcp_prefect.tracker.factory import backend_of, sqlite_path

SECRET = "Sup3r-s3cret"
ENCODED = "p%40ss%2Fw0rd-9f3"  # "p@ss/w0rd-9f3" once decoded
DECODED = "p@ss/w0rd-9f3"


def _full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def _assert_no_secret(exc: BaseException, *secrets: str) -> None:
    text = _full_text(exc)
    for secret in secrets:
        assert secret not in text, f"secret leaked into: {text}"


# -- backend choice --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "backend"),
    [
        ("tracker.db", "sqlite"),
        ("/var/lib/rahcp/tracker.db", "sqlite"),
        (Path("x.db"), "sqlite"),
        ("sqlite:///relative.db", "sqlite"),
        ("sqlite:////abs/path.db", "sqlite"),
        ("postgresql://u:p@db:5432/rahcp", "postgres"),
        ("postgres://u:p@db/rahcp", "postgres"),
        ("postgresql+psycopg://u:p@db/rahcp", "postgres"),
        ("host=db dbname=rahcp user=u password=p", "postgres"),
    ],
)
def test_backend_is_chosen_from_the_target(target: str | Path, backend: str) -> None:
    assert backend_of(target) == backend


def test_sqlite_urls_map_to_paths() -> None:
    assert sqlite_path("sqlite:///relative.db") == "relative.db"
    assert sqlite_path("sqlite:////abs/path.db") == "/abs/path.db"
    assert sqlite_path("plain.db") == "plain.db"


def test_create_tracker_opens_sqlite_from_a_url(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/via-url.db"
    with create_tracker(target, job="j") as tracker:  # type: ignore[attr-defined]
        assert isinstance(tracker, SqliteTracker)
        tracker.mark("k", 1, "done")  # type: ignore[arg-type]
    assert (tmp_path / "via-url.db").exists()


@pytest.mark.parametrize(
    "target",
    [
        f"mysql://root:{SECRET}@db/rahcp",
        f"redis://:{SECRET}@cache:6379/0",
        f"https://user:{SECRET}@example.com/tracker",
        f"mongodb+srv://u:{SECRET}@cluster/db",
    ],
)
def test_unknown_schemes_are_rejected_naming_the_scheme(target: str) -> None:
    with pytest.raises(ValueError, match="unsupported tracker scheme") as info:
        create_tracker(target, job="j")
    assert isinstance(info.value, TrackerConfigError)
    assert repr(target.split("://")[0]) in str(info.value)
    _assert_no_secret(info.value, SECRET)


@pytest.mark.parametrize("target", ["", "   ", None, 42])
def test_empty_or_non_string_targets_are_rejected(target: object) -> None:
    with pytest.raises(TrackerConfigError):
        create_tracker(target, job="j")  # type: ignore[arg-type]


def test_sqlite_in_an_unwritable_place_fails_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(TrackerConnectionError, match="cannot open SQLite tracker"):
        create_tracker(blocker / "tracker.db", job="j")


# -- bad PostgreSQL DSNs -----------------------------------------------------------------------
def _dsn_with(postgres_dsn: str, *, port: int | None = None, dbname: str | None = None, user: str | None = None) -> str:
    """``postgres_dsn`` (a URL) with a password added and some parts replaced."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(postgres_dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user or parts.username or 'postgres'}:{ENCODED}@{host}:{port or parts.port or 5432}"
    path = f"/{dbname}" if dbname else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"port": 1}, "refused|failed"),
        ({"dbname": "no_such_db_rahcp"}, "no_such_db_rahcp"),
        ({"user": "no_such_role_rahcp"}, "no_such_role_rahcp"),
    ],
)
def test_bad_dsn_fails_in_the_constructor_without_the_password(
    postgres_dsn: str, change: dict, expect: str
) -> None:
    if not postgres_dsn.startswith(("postgresql://", "postgres://")):
        pytest.skip("needs a URL DSN to derive bad DSNs from")
    dsn = _dsn_with(postgres_dsn, **change)
    started = time.monotonic()
    with pytest.raises(TrackerConnectionError, match=expect) as info:
        create_tracker(dsn, job="j")
    assert time.monotonic() - started < 10
    assert isinstance(info.value, ValueError)  # flows reject it as bad configuration
    message = str(info.value)
    assert "cannot connect to the tracker database" in message
    assert "***" in message  # the DSN is shown, masked
    _assert_no_secret(info.value, ENCODED, DECODED)


def test_key_value_dsn_with_bad_port_masks_password() -> None:
    dsn = f"host=127.0.0.1 port=1 dbname=test user=postgres password={SECRET} connect_timeout=3"
    with pytest.raises(TrackerConnectionError) as info:
        create_tracker(dsn, job="j")
    assert "password=***" in str(info.value)
    _assert_no_secret(info.value, SECRET)


def test_malformed_dsn_is_a_config_error_without_the_password() -> None:
    dsn = f"postgresql://u:{SECRET}@127.0.0.1:5432/test?sslmode=bogus-mode"
    with pytest.raises(TrackerConfigError) as info:
        PostgresTracker(dsn, job="j")
    _assert_no_secret(info.value, SECRET)


def test_postgres_tracker_repr_masks_the_password(postgres_dsn: str) -> None:
    tracker = PostgresTracker(postgres_dsn, job="repr-check")
    try:
        assert "PostgresTracker(" in repr(tracker)
        assert repr(tracker) == f"PostgresTracker({mask_dsn(postgres_dsn)!r}, job='repr-check')"
    finally:
        tracker.close()


# -- masking ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db?user=u&password=secret&sslmode=require", "postgresql://h/db?user=u&password=***&sslmode=require"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:a:b@c@h/db", "postgresql://u:***@h/db"),
        ("host=h password=secret user=u", "host=h password=*** user=u"),
        ("host=h password='se cret' user=u", "host=h password=*** user=u"),
        ("postgresql://u:secret@h:notaport/db", "postgresql://u:***@h:notaport/db"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_redact_removes_raw_and_decoded_passwords() -> None:
    dsn = "postgresql://u:p%40ss@h/db"
    assert redact("auth failed for p%40ss and p@ss", dsn) == "auth failed for *** and ***"
