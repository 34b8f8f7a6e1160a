"""The manifest in the archive: each commit of a job writes manifest-sha256.txt last at the root
of the final prefix, listing every file the job holds with its SHA-256; a setting turns it off."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rahcp_prefect.blocks import HCPTransferSettings
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job.manifest import MANIFEST_NAME, is_tag_path, parse_manifest

from .conftest import SavedBlocks, make_tree


def _manifest(emulator: Any, bucket: str, prefix: str) -> dict[str, str]:
    body = emulator.s3.get_object(Bucket=bucket, Key=prefix + MANIFEST_NAME)["Body"].read()
    return parse_manifest(body)


def _stored(emulator: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` but the manifest, by path relative to the prefix."""
    stored = emulator.stored(bucket, prefix)
    return {key[len(prefix):]: body for key, body in stored.items() if not is_tag_path(key[len(prefix):])}


def _expected(files: dict[str, bytes]) -> dict[str, str]:
    return {rel: hashlib.sha256(body).hexdigest() for rel, body in files.items()}


async def test_a_committed_job_holds_a_manifest_of_every_file_rewritten_by_each_commit(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = make_tree(src, 12)
    files["big.bin"] = b"\x07" * (9 * 1024 * 1024)  # multipart (threshold 8 MiB)
    (src / "big.bin").write_bytes(files["big.bin"])
    params = dict(source_dir=str(src), bucket=hcp_bucket, prefix="arch/", **saved_blocks.params())
    first = await bulk_upload(**params)
    assert first["committed"] == 13 and first["verified"] == 13
    assert _manifest(hcp_emulator, hcp_bucket, "arch/") == _expected(files)  # the multipart file too
    written = hcp_emulator.s3.head_object(Bucket=hcp_bucket, Key="arch/" + MANIFEST_NAME)["LastModified"]
    newest = max(
        hcp_emulator.s3.head_object(Bucket=hcp_bucket, Key="arch/" + rel)["LastModified"] for rel in files
    )
    assert written >= newest  # written after the last object was in place

    changed = sorted(rel for rel in files if rel.endswith(".txt"))[0]
    (src / changed).write_bytes(b"changed content, another size")
    (src / "late.txt").write_bytes(b"late arrival")
    files["late.txt"] = b"late arrival"
    await bulk_upload(**params)
    rewritten = _manifest(hcp_emulator, hcp_bucket, "arch/")
    assert rewritten == _expected(_stored(hcp_emulator, hcp_bucket, "arch/"))  # what the prefix holds
    assert rewritten["late.txt"] == _expected(files)["late.txt"] and set(rewritten) == set(files)
    # the rerun sent the changed file again (the job's sync rule) and the manifest names its new bytes
    assert rewritten[changed] == hashlib.sha256(b"changed content, another size").hexdigest()


async def test_the_manifest_can_be_turned_off(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", 3)
    settings = HCPTransferSettings(write_manifest=False)
    name = saved_blocks.settings + "-nomanifest"
    await settings.save(name)
    params = {**saved_blocks.params(), "settings_block": name}
    result = await bulk_upload(source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="off/", **params)
    assert result["committed"] == 3
    listed = hcp_emulator.s3.list_objects_v2(Bucket=hcp_bucket, Prefix="off/")
    assert sorted(obj["Key"] for obj in listed["Contents"]) == sorted(
        f"off/{rel}" for rel in make_tree(tmp_path / "again", 3)
    )


async def test_a_download_checks_the_manifest_and_refuses_an_object_replaced_in_storage(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    from rahcp_prefect.flows import bulk_download

    files = make_tree(tmp_path / "src", 6)
    await bulk_upload(source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="m/", **saved_blocks.params())
    victim = sorted(files)[0]
    size = len(files[victim])
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="m/" + victim, Body=b"#" * size)  # same size
    dest = tmp_path / "dest"
    state = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="m/", return_state=True, **saved_blocks.params()
    )
    assert state.is_failed()
    assert not dest.exists() or not (dest / victim).exists()  # nothing under its final name
    staged = [p for p in tmp_path.rglob("*") if p.is_file() and p.name == Path(victim).name and "src" not in p.parts]
    assert all(p.read_bytes() != b"#" * size for p in staged)  # the damaged bytes kept nowhere
    message = str(state.message)
    assert victim in message and "SHA-256" in message


async def test_a_download_counts_the_retries_of_its_manifest_read(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """The manifest is read once per run on the same two planes as the files: a failed GET of it
    (data plane) and a failed presign of it (API) are each retried and counted in the summary."""
    from rahcp_prefect.flows import bulk_download

    files = make_tree(tmp_path / "src", 4)
    await bulk_upload(source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="r/", **saved_blocks.params())
    get_fault = hcp_emulator.faults.add("data", method="GET", path=rf"/r/{MANIFEST_NAME}$", status=500, count=1)
    down = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), prefix="r/", **saved_blocks.params()
    )
    assert get_fault.hits == 1
    assert down["retries"] == 1 and down["errors"] == 0
    assert down["ok"] == len(files) + 2  # the files, the manifest itself and the files' times
    # the files checked against the manifest, the manifest and the times against their ETag's MD5
    assert (down["verified"], down["unverified"]) == (len(files) + 2, 0)
    assert {p.name for p in (tmp_path / "dest").rglob("*") if p.is_file()} >= {MANIFEST_NAME}


async def test_a_download_without_a_manifest_checks_each_object_against_its_etag(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """Objects another tool wrote (no manifest): the flow passes each listed ETag to its batch,
    so a single-part object's bytes are checked against its MD5; a GET damaged on the way is
    caught and fetched again, and nothing is counted unverified."""
    from rahcp_prefect.flows import bulk_download

    bodies = {f"plain/{name}": name.encode() * 50 for name in ("a.txt", "b.txt", "sub/c.txt")}
    for key, body in bodies.items():
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=key, Body=body)
    damaged = hcp_emulator.faults.add("data", method="GET", path=r"/plain/b\.txt$", damage=True, count=1)
    down = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), prefix="plain/", **saved_blocks.params()
    )
    assert damaged.hits == 1
    assert (down["ok"], down["errors"], down["verified"], down["unverified"]) == (3, 0, 3, 0)
    assert down["retries"] == 1, "the damaged answer was fetched once more"
    for key, body in bodies.items():
        assert (tmp_path / "dest" / key[len("plain/"):]).read_bytes() == body
