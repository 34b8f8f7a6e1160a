"""Unit tests of the engine's pieces that need no server: scanner, filters, paths, merge, stats."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rahcp_prefect.bulk.existing import RemoteSizes, common_prefix
from rahcp_prefect.bulk.filters import GlobFilter
from rahcp_prefect.bulk.paths import (
    UnsafeKeyError,
    check_relpath,
    relative_key,
    temp_name,
)
from rahcp_prefect.bulk.scanner import scan_tree
from rahcp_prefect.bulk.stats import TransferStats
from rahcp_prefect.bulk.validation import UnstorableNameError


def _touch(root: Path, rel: str, data: bytes = b"x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_scan_yields_keys_in_s3_order(tmp_path: Path) -> None:
    names = ["a-b", "a/b", "a/c/d", "a0", "A", "b", "ü", "z z", "a.b", "a/b0"]
    for rel in names:
        _touch(tmp_path, rel, rel.encode())
    got = [rel for rel, _, _, _ in scan_tree(tmp_path)]
    # S3 lists keys by UTF-8 bytes; Python orders str by code point: the same order.
    assert got == sorted(names, key=lambda k: k.encode("utf-8"))
    sizes = {rel: size for rel, _, size, _ in scan_tree(tmp_path)}
    assert sizes == {rel: len(rel.encode()) for rel in names}


def test_scan_is_lazy(tmp_path: Path) -> None:
    for d in range(3):
        for i in range(3):
            _touch(tmp_path, f"d{d}/f{i}")
    walk = scan_tree(tmp_path)
    first = next(walk)
    assert first[0] == "d0/f0"
    # A directory created after the walk started, but before it gets there, is still seen:
    # nothing beyond the current directory was listed up front.
    _touch(tmp_path, "d2/new")
    rest = [rel for rel, _, _, _ in walk]
    assert "d2/new" in rest


def test_scan_select_and_special_files(tmp_path: Path) -> None:
    _touch(tmp_path, "keep.tif")
    _touch(tmp_path, "drop.txt")
    os.mkfifo(tmp_path / "pipe")  # would block a reader forever: never yielded
    got = [rel for rel, _, _, _ in scan_tree(tmp_path, select=lambda rel: rel.endswith(".tif"))]
    assert got == ["keep.tif"]


def test_scan_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _touch(root, "d/f")
    _touch(tmp_path, "outside/o")
    (root / "link-file").symlink_to(root / "d" / "f")
    (root / "link-dir").symlink_to(tmp_path / "outside")
    (root / "d" / "loop").symlink_to(root)  # a loop back to the root
    (root / "broken").symlink_to(tmp_path / "nowhere")
    assert [rel for rel, _, _, _ in scan_tree(root)] == ["d/f"]
    errors: list[str] = []
    got = [rel for rel, _, _, _ in scan_tree(root, follow_symlinks=True, on_error=lambda r, e: errors.append(r))]
    assert got == ["d/f", "link-dir/o", "link-file"]
    assert errors == ["d/loop/"]


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses undecodable file names")
def test_scan_reports_undecodable_names(tmp_path: Path) -> None:
    _touch(tmp_path, "ok")
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xff"), "wb"):
        pass
    errors: list[tuple[str, BaseException]] = []
    got = [rel for rel, _, _, _ in scan_tree(tmp_path, on_error=lambda r, e: errors.append((r, e)))]
    assert got == ["ok"]
    assert [(rel, str(exc)) for rel, exc in errors] == [("bad\\xff", "its name is not valid UTF-8 (shown escaped)")]
    assert isinstance(errors[0][1], UnstorableNameError)


def test_scan_unreadable_directory_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path, "a/f")
    _touch(tmp_path, "b/f")
    real = os.scandir

    def scandir(path):  # root bypasses permissions, so simulate EACCES
        if str(path).endswith(os.sep + "a"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    errors: list[str] = []
    got = [rel for rel, _, _, _ in scan_tree(tmp_path, on_error=lambda r, e: errors.append(r))]
    assert got == ["b/f"] and errors == ["a/"]


def test_glob_filter() -> None:
    assert GlobFilter().accepts("anything") and not GlobFilter().active
    f = GlobFilter(include=["*.tif", "raw/*"], exclude=["*_thumb.*", "skip/*"])
    assert f.accepts("x.tif") and f.accepts("deep/er/x.tif") and f.accepts("raw/a.bin")
    assert not f.accepts("x.jpg")
    assert not f.accepts("x_thumb.tif")
    assert not f.accepts("skip/y.tif")
    assert GlobFilter(include=["x*"]).accepts("sub/xa.bin")  # matched on the name
    assert not GlobFilter(include=["*.TIF"]).accepts("a.tif")  # case-sensitive everywhere


@pytest.mark.parametrize(
    "rel", ["../x", "a/../../etc/x", "/abs", "a//b", "./a", "a/.", "", "a\x00b", "a/"]
)
def test_check_relpath_refuses(rel: str) -> None:
    with pytest.raises(UnsafeKeyError):
        check_relpath(rel)


def test_paths() -> None:
    assert check_relpath("a/b c/ü.txt") == ["a", "b c", "ü.txt"]
    assert relative_key("2025/a/b", "2025/") == "a/b"
    assert relative_key("2025/a/b", "2025") == "a/b"
    assert relative_key("2025x/a", "2025") == "x/a"
    assert relative_key("2025/", "2025/") is None  # folder marker
    assert relative_key("p/file.txt", "p/file.txt") == "file.txt"
    assert relative_key("/abs", "") == "/abs"  # refused later by check_relpath
    with pytest.raises(UnsafeKeyError):
        relative_key("other/x", "p/")
    name = temp_name("scan.tif")
    assert name.startswith(".rahcp-part.") and name.endswith(".tif")
    long = temp_name("x" * 250 + ".tif")
    assert len(long) <= 255 and long.endswith(".tif")


async def _listing(items):
    for key, size in items:
        yield key, size, f'"{key}"'


async def test_remote_sizes_merge() -> None:
    remote = RemoteSizes(_listing([("a", 1), ("b/c", 2), ("d", 3)]))
    assert await remote.lookup("0") is None
    assert await remote.lookup("a") == (1, '"a"')
    assert await remote.lookup("b") is None
    assert await remote.lookup("b/c") == (2, '"b/c"')
    assert await remote.lookup("c") is None
    assert await remote.lookup("a") is None  # out of order: unknown, never a wrong skip
    assert await remote.lookup("d") == (3, '"d"')
    assert await remote.lookup("e") is None
    assert common_prefix("dir/a1", "dir/b2") == "dir/"
    assert common_prefix("x", "y") == ""


def test_stats_properties() -> None:
    s = TransferStats(ok=3, skipped=2, errors=1, bytes=4 * 1024 * 1024, elapsed=2.0)
    assert s.done == 6
    assert s.mb_per_sec == 2.0
    assert s.files_per_sec == 3.0
    assert TransferStats().mb_per_sec == 0.0 and TransferStats().files_per_sec == 0.0
