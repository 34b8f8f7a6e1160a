"""The manifest's format: BagIt lines, percent-encoded CR/LF/%, sorted, read back exactly."""

from __future__ import annotations

import hashlib

import pytest

from rahcp_prefect.job.manifest import (
    MANIFEST_NAME,
    ManifestError,
    decode_path,
    encode_path,
    parse_manifest,
    render_manifest,
)

A = hashlib.sha256(b"a").hexdigest()
B = hashlib.sha256(b"b").hexdigest()


def test_lines_are_bagit_sorted_by_path_and_encoded() -> None:
    text = render_manifest({"z.txt": A, "dir/100%\r\nname": B, " lead space": A}).decode()
    assert text == f"{A}   lead space\n{B}  dir/100%25%0D%0Aname\n{A}  z.txt\n"
    assert parse_manifest(text.encode()) == {"z.txt": A, "dir/100%\r\nname": B, " lead space": A}


@pytest.mark.parametrize("path", ["%0A", "a%25b", "%%\n\r%", "ü/€.bin", "plain"])
def test_encoding_round_trips(path: str) -> None:
    assert decode_path(encode_path(path)) == path
    assert "\n" not in encode_path(path) and "\r" not in encode_path(path)


def test_other_bagit_writers_are_read_too() -> None:
    assert parse_manifest(f"{A.upper()} one.txt\r\n{B}\t\ttwo%0a.txt\n\n".encode()) == {"one.txt": A, "two\n.txt": B}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not-a-digest  x\n", "line 1 is not"),
        (f"{A}  x\n{B}  x\n".encode(), "line 2 lists 'x' twice"),
        (b"\xff\xfe", "is not UTF-8"),
    ],
)
def test_bad_manifests_name_the_line(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data, "bkt/p/manifest-sha256.txt")


def test_a_digest_that_is_not_a_sha256_is_refused() -> None:
    with pytest.raises(ManifestError, match="not a SHA-256"):
        render_manifest({"x": "abc"})


async def test_the_final_check_compares_the_prefix_with_the_manifest(hcp_client, hcp_bucket) -> None:
    from rahcp_prefect.job.manifest import check_manifest, write_manifest

    digests = {"a.txt": A, "d/b.txt": B}
    listed = {"f/a.txt": 1, "f/d/b.txt": 1}
    assert await check_manifest(hcp_client, hcp_bucket, "f/", listed, digests) == [
        f"{hcp_bucket}/f/{MANIFEST_NAME}: missing"
    ]
    await write_manifest(hcp_client, hcp_bucket, "f/", digests)
    assert await check_manifest(hcp_client, hcp_bucket, "f/", listed, digests) == []
    problems = await check_manifest(hcp_client, hcp_bucket, "f/", {"f/a.txt": 1}, {"a.txt": B, "new.txt": A})
    assert problems == [
        "f/new.txt: not in the manifest",
        "f/d/b.txt: in the manifest, not in the job",
        f"f/a.txt: manifest says {A}, the job recorded {B}",
        f"f/d/b.txt: in the manifest, not in {hcp_bucket}/f/",
    ]
