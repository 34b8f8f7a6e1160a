"""What the client makes of HCP's namespace rules: errors that name the cause, the namespace's
settings through MAPI, and the safe replace (on the HCP-faithful emulator)."""

from __future__ import annotations

from typing import Any

import pytest

from rahcp_prefect.client import (
    AuthenticationError,
    ConflictError,
    HCPClient,
    OverwriteRefusedError,
    RetentionError,
)
from rahcp_prefect.client.namespace import namespace_rules


async def test_a_refused_delete_of_a_held_object_names_the_key_and_retention_not_the_login(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient
) -> None:
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="kept/a.txt", Body=b"a")
    hcp_mode.set_hold(hcp_bucket, "kept/a.txt")
    with pytest.raises(RetentionError, match=rf"{hcp_bucket}/kept/a.txt cannot be deleted: .*retention or on hold") as caught:
        await hcp_client.s3.delete(hcp_bucket, "kept/a.txt")
    assert not isinstance(caught.value, AuthenticationError) and caught.value.status_code == 403


async def test_a_refused_overwrite_names_versioning_and_the_overwrite_option(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient
) -> None:
    for key in ("src.txt", "dst.txt"):
        hcp_mode.s3.put_object(Bucket=hcp_bucket, Key=key, Body=key.encode())
    with pytest.raises(OverwriteRefusedError, match=r"dst.txt exists .*no versions and its overwrite option is off") as caught:
        await hcp_client.s3.copy(hcp_bucket, "dst.txt", hcp_bucket, "src.txt")
    assert isinstance(caught.value, ConflictError) and caught.value.status_code == 409


async def test_an_overwrite_of_a_held_object_is_a_retention_error(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, overwrite=True)
    for key in ("src.txt", "dst.txt"):
        hcp_mode.s3.put_object(Bucket=hcp_bucket, Key=key, Body=key.encode())
    hcp_mode.set_hold(hcp_bucket, "dst.txt")
    with pytest.raises(RetentionError, match=r"dst.txt cannot be overwritten"):
        await hcp_client.s3.copy(hcp_bucket, "dst.txt", hcp_bucket, "src.txt")


@pytest.mark.parametrize(
    ("settings", "versioned", "overwrite", "retention"),
    [
        ({}, False, False, None),
        ({"versioning": True}, True, False, None),
        ({"overwrite": True}, False, True, None),
        ({"retention": "+1y"}, False, False, "+1y"),
        ({"retention": "0"}, False, False, None),
    ],
)
async def test_the_namespace_settings_are_read_through_mapi(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, settings: dict[str, Any], versioned: bool, overwrite: bool,
    retention: str | None,
) -> None:
    if settings:
        hcp_mode.configure_namespace(hcp_bucket, **settings)
    rules = await namespace_rules(hcp_client, hcp_bucket)
    assert (rules.known, rules.versioned, rules.overwrite, rules.retention_default) == (True, versioned, overwrite, retention)
    assert rules.copies_over == (versioned or overwrite) and rules.retains == (retention is not None)


async def test_without_a_tenant_the_settings_are_unknown_and_learnt_from_refusals(
    hcp_mode: Any, hcp_bucket: str, hcp_credentials: dict[str, Any]
) -> None:
    async with HCPClient(**{**hcp_credentials, "tenant": None}) as client:
        rules = await namespace_rules(client, hcp_bucket)
    assert not rules.known and "unknown" in rules.describe()


async def test_the_safe_replace_retries_a_copy_refused_a_moment_after_the_delete(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient
) -> None:
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="stage/a.txt", Body=b"new bytes")
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="final/a.txt", Body=b"old")
    etag = hcp_mode.s3.head_object(Bucket=hcp_bucket, Key="stage/a.txt")["ETag"]
    busy = hcp_mode.faults.add("api", method="POST", path=r"/objects/final/a\.txt/copy$", status=409, count=2)
    await hcp_client.s3.replace(hcp_bucket, "final/a.txt", hcp_bucket, "stage/a.txt", etag, size=9, base_delay=0.01)
    assert busy.hits == 2
    assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="final/a.txt")["Body"].read() == b"new bytes"
    assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="stage/a.txt")["Body"].read() == b"new bytes", "the source stays"


async def test_a_safe_replace_onto_a_held_object_deletes_nothing_and_says_why(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient
) -> None:
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="stage/a.txt", Body=b"new")
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="final/a.txt", Body=b"old")
    hcp_mode.set_hold(hcp_bucket, "final/a.txt")
    with pytest.raises(RetentionError, match="final/a.txt cannot be deleted"):
        await hcp_client.s3.replace(hcp_bucket, "final/a.txt", hcp_bucket, "stage/a.txt", '"x"')
    assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="final/a.txt")["Body"].read() == b"old"


@pytest.fixture(params=[pytest.param({}, id="hcp-default"), pytest.param({"versioning": True}, id="versioned"),
                        pytest.param({"overwrite": True}, id="overwrite-on")])
def namespace(request: pytest.FixtureRequest, hcp_mode: Any, hcp_bucket: str) -> dict[str, Any]:
    """``hcp_bucket`` as HCP's default namespace, a versioned one, one with the overwrite option."""
    hcp_mode.configure_namespace(hcp_bucket, **request.param)
    return dict(request.param)


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
async def test_write_replaces_an_object_whatever_the_namespace_allows(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, namespace: dict[str, Any], multipart: bool
) -> None:
    for night in (b"night 1", b"night 2"):
        await hcp_client.s3.write(hcp_bucket, "out/a.txt", night, multipart=multipart)
        assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="out/a.txt")["Body"].read() == night


async def test_copy_over_replaces_the_destination_whatever_the_namespace_allows(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, namespace: dict[str, Any]
) -> None:
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="dst.txt", Body=b"old")
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="src.txt", Body=b"new bytes")
    outcome = await hcp_client.s3.copy_over(hcp_bucket, "dst.txt", hcp_bucket, "src.txt")
    assert outcome == ("placed" if namespace else "replaced")
    assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="dst.txt")["Body"].read() == b"new bytes"
    assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="src.txt")["Body"].read() == b"new bytes"


@pytest.mark.parametrize("settings", [pytest.param({}, id="hcp-default"), pytest.param({"overwrite": True}, id="overwrite-on")])
async def test_write_and_copy_over_onto_a_held_object_name_it_and_change_nothing(
    hcp_mode: Any, hcp_bucket: str, hcp_client: HCPClient, settings: dict[str, Any]
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, **settings)
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="kept/a.txt", Body=b"old")
    hcp_mode.s3.put_object(Bucket=hcp_bucket, Key="src.txt", Body=b"new")
    hcp_mode.set_hold(hcp_bucket, "kept/a.txt")
    with pytest.raises(RetentionError, match=rf"{hcp_bucket}/kept/a.txt cannot be (deleted|overwritten)"):
        await hcp_client.s3.write(hcp_bucket, "kept/a.txt", b"new")
    with pytest.raises(RetentionError, match=rf"{hcp_bucket}/kept/a.txt cannot be (deleted|overwritten)"):
        await hcp_client.s3.copy_over(hcp_bucket, "kept/a.txt", hcp_bucket, "src.txt")
    assert hcp_mode.s3.get_object(Bucket=hcp_bucket, Key="kept/a.txt")["Body"].read() == b"old"
