"""Fault injection on the API plane (ASGI) and the data plane (moto behind WSGI), in-process and
through the /_emulator control routes."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from rahcp_prefect.testing import HCPEmulator

CAPS = "/capabilities"


def _caps(emulator: HCPEmulator) -> httpx.Response:
    return httpx.get(f"{emulator.base_url}{CAPS}")


def test_api_status_fault_with_count(hcp_emulator: HCPEmulator) -> None:
    rule = hcp_emulator.faults.add("api", method="GET", path="/capabilities$", status=503, count=2)
    first, second, third = (_caps(hcp_emulator) for _ in range(3))
    assert (first.status_code, first.json()) == (503, {"detail": "injected fault"})
    assert second.status_code == 503
    assert third.status_code == 200
    assert rule.hits == 2
    # The faulted requests are counted under their route template, like normal ones.
    assert hcp_emulator.request_counts[("api", "GET", CAPS)] == 3


def test_api_fault_filters_method_and_path(hcp_emulator: HCPEmulator) -> None:
    rule = hcp_emulator.faults.add("api", method="POST", path="/capabilities", status=500, count=None)
    assert _caps(hcp_emulator).status_code == 200  # GET does not match a POST rule
    other = hcp_emulator.faults.add("api", path="^/liveness$", status=502, count=None)
    assert _caps(hcp_emulator).status_code == 200
    assert httpx.get(f"{hcp_emulator.root_url}/liveness").status_code == 502
    assert httpx.get(f"{hcp_emulator.root_url}/liveness").status_code == 502  # count=None: every time
    assert (rule.hits, other.hits) == (0, 2)


def test_api_fault_on_head_has_empty_body(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    hcp_emulator.faults.add("api", method="HEAD", status=503)
    resp = api.head(f"/buckets/{hcp_bucket}/objects/anything")
    assert resp.status_code == 503 and resp.content == b""


def test_api_delay_then_normal_handling(hcp_emulator: HCPEmulator) -> None:
    hcp_emulator.faults.add("api", path=CAPS, delay=0.4)
    start = time.monotonic()
    resp = _caps(hcp_emulator)
    assert resp.status_code == 200 and resp.json()["mapi_enabled"] is True
    assert time.monotonic() - start >= 0.4


def test_api_drop_is_a_transport_error_not_a_500(hcp_emulator: HCPEmulator) -> None:
    rule = hcp_emulator.faults.add("api", path=CAPS, drop=True)
    with pytest.raises(httpx.TransportError):
        _caps(hcp_emulator)
    assert rule.hits == 1
    assert _caps(hcp_emulator).status_code == 200


def test_api_drop_with_a_request_body(api: httpx.Client, hcp_emulator: HCPEmulator) -> None:
    hcp_emulator.faults.add("api", method="POST", path="/presign$", drop=True)
    with pytest.raises(httpx.TransportError):
        api.post("/presign", json={"bucket": "b", "key": "k" * 5000})
    assert api.post("/presign", json={"bucket": "b", "key": "k"}).status_code == 200


def test_probability(hcp_emulator: HCPEmulator) -> None:
    never = hcp_emulator.faults.add("api", path=CAPS, status=500, count=None, probability=0.0)
    assert all(_caps(hcp_emulator).status_code == 200 for _ in range(20))
    assert never.hits == 0
    hcp_emulator.faults.clear()
    half = hcp_emulator.faults.add("api", path=CAPS, status=500, count=None, probability=0.5)
    statuses = [_caps(hcp_emulator).status_code for _ in range(100)]
    assert 20 <= statuses.count(500) <= 80
    assert half.hits == statuses.count(500)


def test_rule_validation(hcp_emulator: HCPEmulator) -> None:
    with pytest.raises(ValueError):
        hcp_emulator.faults.add("api", path="(unclosed")
    with pytest.raises(ValueError):
        hcp_emulator.faults.add("nowhere", status=500)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        hcp_emulator.faults.add("api", probability=1.5)
    with pytest.raises(ValueError, match="damage is a data-plane fault"):
        hcp_emulator.faults.add("api", damage=True)
    with pytest.raises(ValueError, match="damage is a data-plane fault"):
        hcp_emulator.faults.add("data", damage=True, status=500)
    assert hcp_emulator.faults.rules == []


def _presigned(api: httpx.Client, bucket: str, key: str, method: str = "put_object") -> str:
    return str(api.post("/presign", json={"bucket": bucket, "key": key, "method": method}).json()["url"])


def test_data_status_fault_rejects_the_upload(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    url = _presigned(api, hcp_bucket, "d/x.bin")
    rule = hcp_emulator.faults.add("data", method="PUT", path=r"/d/x\.bin$", status=503)
    resp = httpx.put(url, content=b"x" * 200_000)
    assert (resp.status_code, resp.json()) == (503, {"detail": "injected fault"})
    assert rule.hits == 1
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0
    assert httpx.put(url, content=b"ok").status_code == 200  # count=1: the retry goes through


def test_data_drop_is_a_transport_error(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    url = _presigned(api, hcp_bucket, "drop.bin")
    hcp_emulator.faults.add("data", method="PUT", drop=True)
    with pytest.raises(httpx.TransportError):
        httpx.put(url, content=b"y" * 300_000)
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0
    assert httpx.put(url, content=b"y").status_code == 200


def test_drop_answer_does_the_work_then_drops_the_connection(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    """``drop_answer``: the request is handled in full (the object is stored, the bucket
    created), and the client sees a dropped connection instead of the answer."""
    url = _presigned(api, hcp_bucket, "stored.bin")
    data_rule = hcp_emulator.faults.add("data", method="PUT", drop_answer=True)
    with pytest.raises(httpx.TransportError):
        httpx.put(url, content=b"z" * 300_000)
    assert hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="stored.bin")["Body"].read() == b"z" * 300_000
    api_rule = hcp_emulator.faults.add("api", method="DELETE", path="/objects/stored.bin$", drop_answer=True)
    with pytest.raises(httpx.TransportError):
        api.delete(f"/buckets/{hcp_bucket}/objects/stored.bin")
    assert hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket)["KeyCount"] == 0
    assert (data_rule.hits, api_rule.hits) == (1, 1)
    assert hcp_emulator.request_counts[("api", "DELETE", "/buckets/{bucket}/objects/{key:path}")] == 1
    with pytest.raises(ValueError, match="drop_answer"):
        hcp_emulator.faults.add("api", drop_answer=True, status=500)


def test_data_delay_and_head_fault(api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="slow", Body=b"abc")
    get_url = _presigned(api, hcp_bucket, "slow", "get_object")
    hcp_emulator.faults.add("data", method="GET", delay=0.3)
    start = time.monotonic()
    assert httpx.get(get_url).content == b"abc"
    assert time.monotonic() - start >= 0.3
    head_url = api.post(f"/buckets/{hcp_bucket}/objects/presign", json={"keys": ["slow"], "method": "head_object"}).json()["urls"][0]["url"]
    hcp_emulator.faults.add("data", method="HEAD", status=500)
    head = httpx.head(head_url)
    assert head.status_code == 500 and head.content == b""


def test_data_damage_flips_one_byte_of_a_put_body_and_of_a_get_answer(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    body = bytes(range(256)) * 1000
    put_url = _presigned(api, hcp_bucket, "dmg")
    rule = hcp_emulator.faults.add("data", method="PUT", damage=True)
    assert httpx.put(put_url, content=body).status_code == 200  # no Content-MD5: stored damaged
    stored = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="dmg")["Body"].read()
    assert len(stored) == len(body) and sum(a != b for a, b in zip(stored, body)) == 1
    assert rule.hits == 1
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="dmg", Body=body)
    get_url = _presigned(api, hcp_bucket, "dmg", "get_object")
    hcp_emulator.faults.add("data", method="GET", damage=True)
    got = httpx.get(get_url)
    assert got.status_code == 200 and len(got.content) == len(body)
    assert sum(a != b for a, b in zip(got.content, body)) == 1
    assert httpx.get(get_url).content == body  # count=1: the next GET is whole
    missing = _presigned(api, hcp_bucket, "absent", "get_object")
    hcp_emulator.faults.add("data", method="GET", damage=True)
    assert b"NoSuchKey" in httpx.get(missing).content  # an error answer is left alone


def test_data_faults_spare_the_emulators_own_s3_calls(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    rule = hcp_emulator.faults.add("data", status=500, count=None)
    assert api.get(f"/buckets/{hcp_bucket}/objects").status_code == 200
    assert rule.hits == 0
    assert httpx.get(_presigned(api, hcp_bucket, "x", "get_object")).status_code == 500
    assert rule.hits == 1


def test_control_routes(hcp_emulator: HCPEmulator) -> None:
    root = hcp_emulator.root_url
    added = httpx.post(f"{root}/_emulator/faults", json={"plane": "api", "path": CAPS, "status": 418, "count": None})
    assert added.status_code == 201
    rule = added.json()
    assert (rule["plane"], rule["status"], rule["count"], rule["hits"]) == ("api", 418, None, 0)
    # A catch-all API rule never blocks the control routes themselves.
    httpx.post(f"{root}/_emulator/faults", json={"plane": "api", "path": ".*", "status": 500, "count": None, "method": "PUT"})
    assert _caps(hcp_emulator).status_code == 418
    listed = httpx.get(f"{root}/_emulator/faults").json()["faults"]
    assert [(f["id"], f["hits"]) for f in listed][0] == (rule["id"], 1)

    assert httpx.delete(f"{root}/_emulator/faults/{rule['id']}").json() == {"removed": rule["id"]}
    assert httpx.delete(f"{root}/_emulator/faults/{rule['id']}").status_code == 404
    assert _caps(hcp_emulator).status_code == 200
    assert httpx.delete(f"{root}/_emulator/faults").json() == {"cleared": 1}
    assert hcp_emulator.faults.rules == []

    assert httpx.post(f"{root}/_emulator/faults", json={"plane": "api", "path": "("}).status_code == 400
    assert httpx.post(f"{root}/_emulator/faults", json={"plane": "sky"}).status_code == 422

    stats = httpx.get(f"{root}/_emulator/stats").json()["counts"]
    caps = [c for c in stats if (c["plane"], c["method"], c["route"]) == ("api", "GET", CAPS)]
    assert caps and caps[0]["count"] == 2
    assert not [c for c in stats if c["route"].startswith("/_emulator")]
    assert httpx.delete(f"{root}/_emulator/stats").json() == {"status": "reset"}
    assert httpx.get(f"{root}/_emulator/stats").json()["counts"] == []


def test_data_faults_unavailable_with_external_s3(hcp_emulator: HCPEmulator) -> None:
    with HCPEmulator(s3_endpoint=hcp_emulator.s3_endpoint) as external:
        with pytest.raises(ValueError, match="external S3 endpoint"):
            external.faults.add("data", status=500)
        resp = httpx.post(f"{external.root_url}/_emulator/faults", json={"plane": "data", "status": 500})
        assert resp.status_code == 400
        assert "external S3 endpoint" in resp.json()["detail"]
        assert external.faults.add("api", status=500).plane == "api"


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``call()`` in a thread; its answer (or exception) lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.timeout(60)
def test_a_hold_lets_after_requests_through_and_holds_the_next_until_released(
    api: httpx.Client, hcp_emulator: HCPEmulator, hcp_bucket: str
) -> None:
    """``hold=True, after=2``: two PUTs pass, the third waits (the test knows the run is there),
    then is dropped on release (nothing stored) or, with ``forward``, handled."""
    urls = [_presigned(api, hcp_bucket, f"h/{index}.bin") for index in range(4)]
    rule = hcp_emulator.faults.add("data", method="PUT", path=r"/h/", hold=True, after=2, count=None)
    assert [httpx.put(url, content=b"x").status_code for url in urls[:2]] == [200, 200]
    held, answer = _in_thread(lambda: httpx.put(urls[2], content=b"held", timeout=30))
    assert rule.wait_held(10) and rule.held == 1 and not answer
    time.sleep(0.3)
    assert not answer, "still held"
    rule.release()
    held.join(10)
    assert isinstance(answer[0], httpx.TransportError), "released with a drop"
    keys = [o["Key"] for o in hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="h/").get("Contents", [])]
    assert keys == ["h/0.bin", "h/1.bin"], "the dropped PUT stored nothing"

    api_rule = hcp_emulator.faults.add("api", path=CAPS, hold=True)
    waiting, caps = _in_thread(lambda: _caps(hcp_emulator))
    assert api_rule.wait_held(10)
    root = hcp_emulator.root_url
    assert httpx.get(f"{root}/_emulator/faults").json()["faults"][-1]["held"] == 1
    assert httpx.post(f"{root}/_emulator/faults/{api_rule.id}/release", params={"forward": True}).status_code == 200
    waiting.join(10)
    assert caps[0].status_code == 200, "released with forward: handled"
    with pytest.raises(ValueError, match="hold"):
        hcp_emulator.faults.add("api", hold=True, status=500)
