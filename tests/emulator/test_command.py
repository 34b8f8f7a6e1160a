"""The ``rahcp-prefect emulator`` command and ``python -m rahcp_prefect.testing``: one JSON line
on stdout when ready, then serve until SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


@contextmanager
def _running(cmd: list[str]) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=60)
        assert line and line[0], f"no ready line; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"  # type: ignore[union-attr]
        yield proc, json.loads(line[0])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=15)


def _console_script() -> str:
    script = Path(sys.executable).parent / "rahcp-prefect"
    if not script.exists():
        pytest.skip("the rahcp-prefect console script is not installed in this environment")
    return str(script)


def test_console_script_prints_urls_serves_and_stops() -> None:
    cmd = [_console_script(), "emulator", "--host", "127.0.0.1", "--port", "0", "--users", "ci:pw1,other:pw2"]
    with _running(cmd) as (proc, urls):
        assert set(urls) == {"api", "root", "s3"}
        assert urls["api"] == urls["root"] + "/api/v1"
        assert httpx.get(f"{urls['root']}/liveness").json() == {"status": "ok"}
        bad = httpx.post(f"{urls['api']}/auth/token", data={"username": "ci", "password": "nope"})
        assert bad.status_code == 401
        good = httpx.post(f"{urls['api']}/auth/token", data={"username": "ci", "password": "pw1"})
        token = good.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{urls['api']}/buckets", json={"bucket": "cli-bucket"}, headers=headers).status_code == 201
        url = httpx.post(f"{urls['api']}/presign", json={"bucket": "cli-bucket", "key": "k", "method": "put_object"}, headers=headers).json()["url"]
        assert url.startswith(urls["s3"] + "/cli-bucket/k?")
        assert httpx.put(url, content=b"hi").status_code == 200
        assert httpx.put(url, content=b"again").status_code == 409  # an HCP namespace by default
        assert httpx.get(f"{urls['root']}/health").json()["cache"] == "disabled"
        # Faults can be driven from this (other) process over HTTP.
        httpx.post(f"{urls['root']}/_emulator/faults", json={"plane": "api", "path": "/liveness", "status": 503})
        assert httpx.get(f"{urls['root']}/liveness").status_code == 503
        assert _stop(proc) == 0
    assert proc.stdout is not None and proc.stdout.read() == ""  # exactly one line


def test_the_emulator_process_keeps_its_startup_heap_out_of_the_collector() -> None:
    """Its own process freezes what it loaded (moto, botocore's models): a full collection then
    scans what requests left, not that whole heap (100-230 ms pauses of every request before)."""
    with _running([sys.executable, "-m", "rahcp_prefect.testing", "--port", "0"]) as (proc, urls):
        gc_stats = httpx.get(f"{urls['root']}/_emulator/stats").json()["gc"]
        assert gc_stats["frozen"] > 100_000, gc_stats
        assert len(gc_stats["collections"]) == 3
        assert _stop(proc) == 0


def test_python_dash_m_with_fixed_s3_port() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s3_port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "rahcp_prefect.testing", "--port", "0", "--s3-port", str(s3_port), "--no-mapi",
        "--mode", "s3", "--cache-ttl", "30",
    ]
    with _running(cmd) as (proc, urls):
        assert urls["s3"] == f"http://127.0.0.1:{s3_port}"
        assert httpx.get(f"{urls['api']}/capabilities").json()["mapi_enabled"] is False
        assert httpx.get(f"{urls['root']}/health").json()["cache"] == "connected"
        token = httpx.post(f"{urls['api']}/auth/token", data={"username": "u", "password": "p"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        httpx.post(f"{urls['api']}/buckets", json={"bucket": "cli-s3-mode"}, headers=headers)
        body = {"bucket": "cli-s3-mode", "key": "k", "method": "put_object"}
        url = httpx.post(f"{urls['api']}/presign", json=body, headers=headers).json()["url"]
        assert [httpx.put(url, content=b"x").status_code for _ in range(2)] == [200, 200]  # plain S3
        assert _stop(proc) == 0


def test_cli_rejects_malformed_users() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rahcp_prefect.cli", "emulator", "--users", "nopassword"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "user:pass" in proc.stderr


def test_the_metadata_store_from_the_command_line() -> None:
    """``--store metadata``: uploads stored without their bytes (a GET answers zeros)."""
    cmd = [sys.executable, "-m", "rahcp_prefect.testing", "--port", "0", "--store", "metadata"]
    with _running(cmd) as (proc, urls):
        token = httpx.post(f"{urls['api']}/auth/token", data={"username": "u", "password": "p"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{urls['api']}/buckets", json={"bucket": "cli-meta"}, headers=headers).status_code == 201
        presign = {"bucket": "cli-meta", "key": "k", "method": "put_object"}
        url = httpx.post(f"{urls['api']}/presign", json=presign, headers=headers).json()["url"]
        assert httpx.put(url, content=b"hello").status_code == 200
        get = httpx.post(f"{urls['api']}/presign", json={**presign, "method": "get_object"}, headers=headers).json()["url"]
        assert httpx.get(get).content == bytes(5)
        assert _stop(proc) == 0
