"""Input checks before any request (``bulk.validation``) and what a walk never uploads
(``bulk.exclusions``): bucket names, prefixes, counts, odd file names, key length."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.blocks import HCPTransferSettings
from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_upload
from rahcp_prefect.bulk.exclusions import NeverUpload, download_staging
from rahcp_prefect.bulk.scanner import scan_tree
from rahcp_prefect.bulk.validation import (
    MAX_KEY_BYTES,
    InvalidInputError,
    UnstorableNameError,
    check_bucket,
    check_count,
    check_prefix,
    key_problem,
    key_room,
    name_problem,
    shown,
)
from rahcp_prefect.tracker import SqliteTracker

GOOD_BUCKETS = ["abc", "my-bucket", "a.b.c", "b" * 63, "0-archive-2025", "1.2.3"]
BAD_BUCKETS = {
    "ab": "3 to 63 characters long, not 2",
    "b" * 64: "3 to 63 characters long, not 64",
    "My-Bucket": "not 'BM'",
    "a/b": "not '/'",
    "under_score": "not '_'",
    "-abc": "begin and end with a letter or a digit",
    "abc.": "begin and end with a letter or a digit",
    "a..b": "two dots in a row",
    "192.168.5.4": "IP address",
    "xn--abc": "prefix 'xn--' is reserved",
    "sthree-x": "prefix 'sthree-' is reserved",
    "data-s3alias": "suffix '-s3alias' is reserved",
    "x--ol-s3": "suffix '--ol-s3' is reserved",
    "ünï": "not 'ïü'",
}


@pytest.mark.parametrize("bucket", GOOD_BUCKETS)
def test_good_bucket_names_pass(bucket: str) -> None:
    assert check_bucket(bucket) == bucket


@pytest.mark.parametrize(("bucket", "reason"), BAD_BUCKETS.items())
def test_bad_bucket_names_are_refused_naming_the_name_and_the_rule(bucket: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_bucket(bucket)
    assert str(caught.value).startswith(f"bucket {bucket!r} is not a valid bucket name: ")
    assert reason in str(caught.value)
    with pytest.raises(InvalidInputError, match="bucket must be a string, got NoneType None"):
        check_bucket(None)


@pytest.mark.parametrize("prefix", ["", "final/", "a/b/c/", "2025", "..dots../", "a.b/", ".rahcp-staging/x/", "ünï/文件/"])
def test_good_prefixes_pass(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/abs/", "prefix '/abs/' is refused: it must not begin with '/'"),
        ("a//b/", "prefix 'a//b/' is refused: it must not hold '//'"),
        ("../x/", "prefix '../x/' is refused: it must not hold a '.' or '..' path segment"),
        ("a/./b/", "'.' or '..' path segment"),
        ("a/..", "'.' or '..' path segment"),
        ("new\nline/", "prefix 'new\\nline/' is refused: it holds a control character"),
        ("tab\t/", "prefix 'tab\\t/' is refused: it holds a control character"),
        ("bad\udcff/", "prefix 'bad\\xff/' is refused: it is not valid UTF-8 (shown escaped)"),
        ("x" * 1024, "it is 1024 bytes of UTF-8 and S3 keys are at most 1024"),
    ],
)
def test_bad_prefixes_are_refused_naming_the_prefix(prefix: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_prefix(prefix)
    assert message in str(caught.value)


def test_counts_are_integers_in_range() -> None:
    assert check_count("batch_size", 1) == 1
    for value, message in [
        (0, "batch_size must be >= 1, got 0"),
        (-5, "batch_size must be >= 1, got -5"),
        (True, "batch_size must be an integer, got bool True"),
        ("10", "batch_size must be an integer, got str '10'"),
        (2.5, "batch_size must be an integer, got float 2.5"),
    ]:
        with pytest.raises(InvalidInputError) as caught:
            check_count("batch_size", value)
        assert str(caught.value) == message
    with pytest.raises(InvalidInputError, match="workers must be between 1 and 512, got 513"):
        check_count("workers", 513, maximum=512)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"wokers": 32}, "settings_overrides: unknown transfer setting(s) wokers (known: chunk_size,"),
        ({"workers": 0}, "settings_overrides: workers = 0: Input should be greater than or equal to 1"),
        ({"workers": 1000}, "settings_overrides: workers = 1000: Input should be less than or equal to 512"),
        ({"workers": "8"}, "settings_overrides: workers must be an integer, got str '8'"),
        ({"workers": True}, "settings_overrides: workers must be an integer, got bool True"),
        ({"verify_upload": "yes"}, "settings_overrides: verify_upload must be true or false, got str 'yes'"),
        ({"progress_interval": -1.0}, "settings_overrides: progress_interval = -1.0: Input should be greater than or equal to 0"),
        ([("workers", 8)], "settings_overrides must be a mapping of setting names to values"),
    ],
)
def test_settings_overrides_name_the_setting_and_the_value(overrides: object, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        HCPTransferSettings().with_overrides(overrides)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message), str(caught.value)
    assert HCPTransferSettings().with_overrides({"progress_interval": 1}).progress_interval == 1.0


def test_engine_configs_check_bucket_prefix_and_counts(tmp_path: Path) -> None:
    common = {"client": None, "tracker": None}
    for make in (
        lambda **kw: BulkUploadConfig(source_dir=tmp_path, **common, **kw),
        lambda **kw: BulkDownloadConfig(dest_dir=tmp_path, **common, **kw),
    ):
        with pytest.raises(InvalidInputError, match="bucket 'a/b' is not a valid bucket name"):
            make(bucket="a/b")
        with pytest.raises(InvalidInputError, match="prefix '/abs/' is refused"):
            make(bucket="bkt", prefix="/abs/")
        with pytest.raises(InvalidInputError, match="presign_batch_size = 0: Input should be greater than or equal to 1"):
            make(bucket="bkt", presign_batch_size=0)
        with pytest.raises(InvalidInputError, match="workers must be an integer, got str '4'"):
            make(bucket="bkt", workers="4")


def test_shown_escapes_undecodable_bytes_and_control_characters() -> None:
    assert shown("plain/ünï.txt") == "plain/ünï.txt"
    assert shown(os.fsdecode(b"\xff\xfe.bin")) == "\\xff\\xfe.bin"
    assert shown("new\nline\t.txt") == "new\\nline\\t.txt"
    assert shown("esc\x1b\x7f\x85") == "esc\\x1b\\x7f\\x85"
    assert name_problem("ünï/文件.txt") is None and name_problem("a\\b.txt") is None
    assert name_problem(os.fsdecode(b"\xff.bin")) == "its name is not valid UTF-8 (shown escaped)"
    assert name_problem("a\nb") == name_problem("c\x85") == "its name holds a control character"


def test_key_length_counts_utf8_bytes_with_the_prefix() -> None:
    staging = ".rahcp-staging/" + "0" * 36 + "/"
    assert len(staging) == 52
    room = key_room(staging, "final/")
    assert room == MAX_KEY_BYTES - 52
    assert key_problem("x" * room, room) is None
    assert key_problem("é" * (room // 2), room) is None
    problem = key_problem("é" * (room // 2 + 1), room)
    assert problem == "its key would be 1026 bytes of UTF-8 with its prefix (52 bytes, staging included); S3 keys are at most 1024"
    assert key_room(staging, "f" * 100 + "/") == MAX_KEY_BYTES - 101


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses undecodable file names")
def test_scan_reports_odd_names_escaped_and_patterns_match_the_escaped_form(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    for name in (b"ok.txt", b"\xff\xfe.bin", b"new\nline.txt", b"x" * 200 + b".txt"):
        with open(os.path.join(root, name), "wb"):
            pass
    os.mkdir(os.path.join(root, b"dir\xff"))
    for name in (b"a.txt", b"b.log"):
        with open(os.path.join(root, b"dir\xff", name), "wb"):
            pass

    def scan(select: object = None, room: int | None = None) -> tuple[list[str], dict[str, str]]:
        errors: dict[str, str] = {}
        got = [rel for rel, *_ in scan_tree(
            tmp_path, on_error=lambda rel, exc: errors.__setitem__(rel, f"{type(exc).__name__}: {exc}"),
            select=select, key_room=room,  # type: ignore[arg-type]
        )]
        return got, errors

    got, errors = scan()
    assert sorted(got) == ["ok.txt", "x" * 200 + ".txt"]
    assert errors == {
        "\\xff\\xfe.bin": "UnstorableNameError: its name is not valid UTF-8 (shown escaped)",
        "new\\nline.txt": "UnstorableNameError: its name holds a control character",
        "dir\\xff/a.txt": "UnstorableNameError: its name is not valid UTF-8 (shown escaped)",
        "dir\\xff/b.log": "UnstorableNameError: its name is not valid UTF-8 (shown escaped)",
    }
    got, errors = scan(select=lambda rel: not rel.startswith(("\\xff\\xfe", "new\\n", "dir\\xff/a")), room=100)
    assert got == ["ok.txt"]
    assert set(errors) == {"dir\\xff/b.log", "x" * 200 + ".txt"}
    assert "its key would be 1128 bytes" in errors["x" * 200 + ".txt"]
    assert isinstance(UnstorableNameError("x"), ValueError)


def test_tracker_files_and_download_folders_inside_the_source_are_never_walked(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for rel in ("a.txt", "tracker.db", "tracker.db-wal", "tracker.db-shm", "down/got.txt",
                ".down.rahcp-staging/part.txt", "deep/.other.rahcp-staging/x.txt", "deep/keep.txt"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(b"x")
    assert download_staging(source / "down") == source / ".down.rahcp-staging"
    warnings: list[str] = []
    skip = NeverUpload(source, [source / "tracker.db", f"{source}/tracker.db-wal", f"{source}/tracker.db-shm",
                                tmp_path / "elsewhere.db"], [source / "down"], warn=warnings.append)
    got = sorted(rel for rel, *_ in scan_tree(source, skip=skip))
    assert got == ["a.txt", "deep/keep.txt"]
    assert len(warnings) == 3, warnings  # one per kind, not one per file
    assert any("tracker.db" in w and "the tracker's own file" in w for w in warnings)
    assert any("down/ inside source_dir is a download destination" in w for w in warnings)
    assert any("a download staging folder" in w for w in warnings)


async def test_the_engine_counts_odd_entries_and_never_hands_the_tracker_an_unstorable_key(
    hcp_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """An explicit work list with an undecodable name, a newline and an over-long path: each a
    counted error (``on_error`` told), the good file sent; the tracker holds the odd names in
    their shown form and no key it could not store (the long one is counted, not marked)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.txt").write_bytes(b"good")
    long_rel = "/".join(["d" * 200] * 6) + ".txt"  # 1,209 bytes
    errors: dict[str, str] = {}
    with SqliteTracker(tmp_path / "t.db", job="j") as tracker:
        stats = await bulk_upload(BulkUploadConfig(
            client=hcp_client, bucket=hcp_bucket, source_dir=source, tracker=tracker, prefix="p/",
            entries=[("good.txt", 4), (os.fsdecode(b"\xff.bin"), 1), ("a\nb.txt", 1), (long_rel, 1)],
            on_error=lambda key, exc: errors.__setitem__(key, str(exc)),
        ))
        assert (stats.ok, stats.errors) == (1, 3)
        assert errors["p/\\xff.bin"] == "its name is not valid UTF-8 (shown escaped)"
        assert errors["p/a\\nb.txt"] == "its name holds a control character"
        assert errors[f"p/{long_rel}"].startswith("its key would be 1211 bytes")
        assert sorted(key for key, _ in tracker.error_entries()) == ["p/\\xff.bin", "p/a\\nb.txt"]
        assert tracker.done_keys() == {"p/good.txt"}
    assert [key for key, *_ in _listing(hcp_emulator, hcp_bucket)] == ["p/good.txt"]


async def test_the_engine_walk_leaves_its_own_tracker_out(
    hcp_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a")
    with SqliteTracker(source / "tracker.db", job="j") as tracker:
        tracker.mark("warm", 1, "done")
        tracker.flush()  # the -wal file exists now
        stats = await bulk_upload(BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=source, tracker=tracker))
        assert stats.ok == 1 and stats.errors == 0
    assert [key for key, *_ in _listing(hcp_emulator, hcp_bucket)] == ["a.txt"]


def _listing(emulator: Any, bucket: str) -> list[tuple[str, int]]:
    answer = emulator.s3.list_objects_v2(Bucket=bucket)
    return [(item["Key"], item["Size"]) for item in answer.get("Contents", [])]
