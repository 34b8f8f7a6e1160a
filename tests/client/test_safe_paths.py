"""``client.safe_paths``: folders opened without following a link, files created never through
one (issue 30). The flows' behaviour is in ``tests/reliability/test_download_links.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rahcp_prefect.client.safe_paths import (
    FileFolder,
    LinkRefusedError,
    TreeStates,
    create_file,
    open_dir,
    open_own,
    open_root,
)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``dest`` with ``dest/a/link -> outside`` and ``dest/top -> outside``."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (dest / "a").mkdir(parents=True)
    outside.mkdir()
    (dest / "a" / "link").symlink_to(outside)
    (dest / "top").symlink_to(outside)
    return dest, outside


@pytest.mark.parametrize(("parts", "link"), [(["top"], "top"), (["a", "link", "b"], "a/link")])
def test_open_dir_refuses_a_link_at_any_depth_and_makes_nothing_behind_it(
    tree: tuple[Path, Path], parts: list[str], link: str
) -> None:
    dest, outside = tree
    root = open_root(dest)
    try:
        with pytest.raises(LinkRefusedError, match=rf"refused 'x/y.txt': '{link}' is a symbolic link"):
            open_dir(root, parts, rel="x/y.txt")
    finally:
        os.close(root)
    assert list(outside.iterdir()) == []


def test_open_dir_makes_missing_folders_and_a_file_is_not_a_folder(tmp_path: Path) -> None:
    root = open_root(tmp_path / "dest")
    try:
        os.close(open_dir(root, ["n", "e", "w"]))
        assert (tmp_path / "dest" / "n" / "e" / "w").is_dir()
        (tmp_path / "dest" / "file").write_bytes(b"")
        with pytest.raises(NotADirectoryError):
            open_dir(root, ["file", "below"])
        with pytest.raises(FileNotFoundError):
            open_dir(root, ["absent"], create=False)
    finally:
        os.close(root)


def test_a_root_that_must_not_be_a_link_is_refused_and_one_that_may_is_followed(tree: tuple[Path, Path]) -> None:
    dest, outside = tree
    with pytest.raises(LinkRefusedError):
        open_root(dest / "top", link_ok=False)
    os.close(open_root(dest / "top"))  # the user's choice
    made = open_root(dest / ".new.rahcp-staging", link_ok=False)
    os.close(made)
    assert (dest / ".new.rahcp-staging").is_dir()


def test_create_file_replaces_a_link_or_a_leftover_never_writes_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"victim")
    (tmp_path / "part").symlink_to(victim)
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = create_file("part", folder)
        os.write(fd, b"mine")
        os.close(fd)
    finally:
        os.close(folder)
    assert victim.read_bytes() == b"victim"
    assert not (tmp_path / "part").is_symlink() and (tmp_path / "part").read_bytes() == b"mine"


def test_open_own_refuses_a_link_and_a_hard_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"v")
    (tmp_path / "soft").symlink_to(victim)
    os.link(victim, tmp_path / "hard")
    with pytest.raises(OSError):
        open_own(str(tmp_path / "soft"), os.O_RDWR, None)
    with pytest.raises(OSError, match="other hard links"):
        open_own(str(tmp_path / "hard"), os.O_RDWR, None)
    assert victim.read_bytes() == b"v"


def test_tree_states_see_no_file_behind_a_link_and_name_the_link(tree: tuple[Path, Path]) -> None:
    dest, outside = tree
    (outside / "x.txt").write_bytes(b"behind a link")
    (dest / "a" / "real.txt").write_bytes(b"12345")
    (dest / "a" / "file-link").symlink_to(outside / "x.txt")
    with TreeStates.at(dest) as states:
        assert states.state(["a", "link", "x.txt"]) is None
        assert states.state(["top", "x.txt"]) is None
        assert states.state(["a", "file-link"]) is None
        found = states.state(["a", "real.txt"])
        assert found is not None and found[0] == 5
        assert states.link(["a", "link", "deeper", "x.txt"]) == "a/link" and states.link(["top", "x.txt"]) == "top"
        assert states.link(["a", "real.txt"]) is None and states.link(["absent", "x.txt"]) is None
    with TreeStates.at(dest / "absent") as states:
        assert states.state(["a", "real.txt"]) is None


def test_file_folder_opens_once_and_keeps_the_root(tmp_path: Path) -> None:
    root = open_root(tmp_path)
    try:
        flat = FileFolder(root, ["x.txt"])
        assert flat.open() == root and flat.name == "x.txt"
        flat.close()
        os.fstat(root)  # still open
        deep = FileFolder(root, ["d", "x.txt"])
        fd = deep.open()
        assert deep.open() == fd != root and (tmp_path / "d").is_dir()
        deep.close()
        with pytest.raises(OSError):
            os.fstat(fd)
    finally:
        os.close(root)
