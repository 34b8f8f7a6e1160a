"""Which keys of a listing can become local files (issue 23), decided in key order."""

from __future__ import annotations

from pathlib import Path

from rahcp_prefect.bulk.paths import LocalNames, folder_of_marker, name_limit, writable_objects_filter


def test_a_file_and_a_folder_of_one_name_the_first_in_key_order_wins(tmp_path: Path) -> None:
    names = LocalNames(str(tmp_path))
    verdicts = {rel: names.reason(rel) for rel in ["a", "a!", "a.txt", "a/b.txt", "a/c/d", "ab", "ab/x"]}
    assert [rel for rel, why in verdicts.items() if why is None] == ["a", "a!", "a.txt", "ab"]
    assert verdicts["a/b.txt"] == "refused 'a/b.txt': 'a' is a file in this prefix, a folder of that name cannot be written too"
    assert "'ab' is a file" in str(verdicts["ab/x"])


def test_empty_dot_and_long_segments_are_refused_with_their_reason(tmp_path: Path) -> None:
    names = LocalNames(str(tmp_path))
    assert "empty, '.' or '..' path segment" in str(names.reason("x//y.txt"))
    assert "empty, '.' or '..' path segment" in str(names.reason("up/../../e"))
    limit = name_limit(str(tmp_path / "not" / "yet"))
    assert limit == name_limit(str(tmp_path)) >= 14
    assert f"a path segment of {limit + 1} bytes" in str(names.reason("d/" + "n" * (limit + 1)))
    assert names.reason("d/" + "n" * limit) is None


def test_folder_markers_are_folders_of_the_prefix(tmp_path: Path) -> None:
    assert folder_of_marker("p/dir/", "p/") == "dir" and folder_of_marker("p/", "p/") is None
    assert folder_of_marker("p/a/b/", "p") == "a/b" and folder_of_marker("p/a", "p/") is None
    why = writable_objects_filter("p/", str(tmp_path))
    assert [why(key) is None for key in ["p/", "p/a", "p/a/", "p/dir/", "p/dir/x"]] == [True, True, False, True, True]
