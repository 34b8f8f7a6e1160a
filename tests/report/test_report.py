"""The operator's words, without Prefect: formatting, keys, phase timing, the summary text and
failure logs that scale."""

from __future__ import annotations

import logging
import re

import pytest

from rahcp_prefect.report.format import (
    artifact_key,
    format_duration,
    format_eta,
    format_rate,
    progress_line,
    public_url,
    relative_key,
)
from rahcp_prefect.report.phases import PhaseTimer
from rahcp_prefect.report.summary import RunFacts, headline, render_summary
from rahcp_prefect.report.throttle import FailureLog

MIB = 1024 * 1024
STAGING = ".rahcp-staging/0b6f5a9e-1111-2222-3333-444455556666/"


def test_artifact_keys_follow_prefect_rules_and_stay_unique() -> None:
    assert artifact_key("bulk-upload:Archive/Nightly 2026/01/") == "bulk-upload-archive-nightly-2026-01"
    assert re.fullmatch(r"summary-elan-x-[0-9a-f]{8}", artifact_key("summary-élan__x"))
    assert artifact_key("///") == "rahcp"
    long_a, long_b = "job-" + "a" * 200 + "-1", "job-" + "a" * 200 + "-2"
    key_a, key_b = artifact_key(long_a), artifact_key(long_b)
    assert len(key_a) <= 100 and key_a != key_b
    assert all(c.islower() or c.isdigit() or c == "-" for c in key_a + key_b)


def test_artifact_keys_transliterate_and_keep_non_ascii_names_apart() -> None:
    """Issue 23: ``scans_ÅÄÖ`` no longer shares ``summary-scans`` with a job named ``scans``."""
    keys = {name: artifact_key(f"summary-{name}") for name in ("scans_ÅÄÖ", "scans_ÄÅÖ", "scans_aao", "scans")}
    assert keys["scans_ÅÄÖ"].startswith("summary-scans-aao-")
    assert keys["scans_aao"] == "summary-scans-aao" and keys["scans"] == "summary-scans"
    assert len(set(keys.values())) == 4
    assert artifact_key("Straße_Øst") .startswith("strasse-ost-")
    assert artifact_key("スキャン") != artifact_key("データ")  # no plain form: the hash keeps them apart


def test_keys_are_shown_relative_and_never_as_a_staging_path() -> None:
    assert relative_key(STAGING + "dir/a.bin", STAGING, "final/") == "dir/a.bin"
    assert relative_key("final/dir/a.bin", STAGING, "final/") == "dir/a.bin"
    assert relative_key(".rahcp-staging/other-run/x.txt", STAGING) == "x.txt"


def test_durations_rates_and_eta_read_naturally() -> None:
    assert format_duration(0.42) == "0.42 s"
    assert format_duration(75) == "1 min 15 s"
    assert format_duration(7380) == "2 h 03 min"
    assert format_rate(1.33 * MIB * 10, 10) == "1.3 MiB/s"
    assert format_rate(2500, 10, "files") == "250 files/s"
    assert format_rate(5, 0) == "-"
    assert format_eta(250, 1000, 10) == "30.0 s"
    line = progress_line("commit", 1200, 3001, 10, bytes_done=20 * MIB, bytes_total=70 * MIB, unit="objects")
    assert line.startswith("commit: 1,200 of 3,001 objects (40 %), 20.0 MiB of 70.0 MiB, 2.0 MiB/s, 120 objects/s")
    assert "ETA 15.0 s" in line


def test_endpoints_are_shown_without_user_info_or_query() -> None:
    assert public_url("https://user:pw@hcp.example:8443/api/v1?token=abc") == "https://hcp.example:8443/api/v1"
    assert public_url("postgresql://u:secret@db:5432/tracker") == "postgresql://db:5432/tracker"


def test_phase_timer_times_each_phase_apart() -> None:
    now = [100.0]
    timer = PhaseTimer(clock=lambda: now[0])
    with timer.phase("transfer") as transfer:
        now[0] += 50
        transfer.files, transfer.bytes = 10, 10 * MIB
    with timer.phase("scan"):
        now[0] += 2
    with timer.phase("commit"):
        now[0] += 8
    assert list(timer.as_dict()) == ["scan", "transfer", "commit"]
    assert timer.as_dict()["transfer"] == {"seconds": 50.0, "files": 10, "bytes": 10 * MIB}
    assert timer.elapsed == 60 and timer.last == "commit"


def _facts(**overrides: object) -> RunFacts:
    values: dict[str, object] = dict(
        direction="upload",
        job="nightly",
        bucket="archive",
        prefix="nightly/2026/01/",
        endpoint="https://hcp.example/api/v1",
        outcome="committed",
        result={"ok": 3001, "skipped": 0, "errors": 0, "bytes": 74_207_280, "committed": 3001},
    )
    values.update(overrides)
    return RunFacts(**values)  # type: ignore[arg-type]


def test_committed_headline_names_count_size_place_and_endpoint() -> None:
    assert headline(_facts()) == (
        "Committed 3,001 files (70.8 MiB) to `archive/nightly/2026/01/` on https://hcp.example/api/v1"
    )


def test_result_fields_are_shown_when_present_and_absent_ones_are_no_error() -> None:
    bare = render_summary(_facts(result={}))
    assert "Committed 0 files (0 B)" in bare and "new files" not in bare
    full = render_summary(
        _facts(result={"ok": 3, "new": 2, "changed": 1, "unchanged": 7, "verified": 3, "kept_staging": 0, "bytes": 5})
    )
    for words in ("| new files | 2 |", "| changed files | 1 |", "| unchanged files | 7 |", "| verified | 3 |"):
        assert words in full
    assert "| kept staging | 0 |" in full or "| staged objects kept | 0 |" in full


def test_rolled_back_summary_says_nothing_changed_and_lists_failures_relative() -> None:
    errors = [(STAGING + f"dir/f-{i:03d}.bin", f"PresignedTransferError: Forbidden for archive/{STAGING}dir/f-{i:03d}.bin") for i in range(25)]
    text = render_summary(
        _facts(
            outcome="rolled back",
            result={"ok": 2751, "errors": 250, "bytes": 1000},
            errors=errors,
            error_count=250,
            key_prefixes=(STAGING, "nightly/2026/01/"),
            full_list="rahcp-prefect errors --job nightly",
        )
    )
    assert "Rolled back: nothing changed in `archive/nightly/2026/01/` on https://hcp.example/api/v1, 250 files failed" in text
    assert "transferred" not in text and "| uploaded |" not in text
    assert "| `dir/f-000.bin` | PresignedTransferError: Forbidden for dir/f-000.bin |" in text
    assert "| `dir/f-019.bin` |" in text and "f-020" not in text
    assert ".rahcp-staging" not in text
    assert "... and 230 more. `rahcp-prefect errors --job nightly` lists them all." in text


def test_download_summary_names_the_destination_folder() -> None:
    text = render_summary(
        _facts(direction="download", outcome="complete", dest_dir="/data/restore", result={"ok": 4, "bytes": 2048, "moved": 4})
    )
    assert "Downloaded 4 files (2.0 KiB) from `archive/nightly/2026/01/` on https://hcp.example/api/v1 into `/data/restore`" in text
    assert "- destination folder: `/data/restore`" in text


def test_failure_log_scales(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = FailureLog(logging.getLogger("test.failures"), interval=10, display=lambda k: k[len(STAGING):], full_list="cmd", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.failures"):
        for index in range(100_000):
            if index % 1000 == 0:
                now[0] += 1  # 100 s in all: ten interval lines
            log(STAGING + f"f{index}", OSError("denied"))
        log.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "Failed: f0: OSError: denied" and "f19: OSError" in lines[19]
    assert 20 < len(lines) < 40
    assert lines[-1] == "100000 file(s) failed in all (20 logged above); all of them: cmd"


def test_deferred_files_are_counted_and_named_and_the_headline_says_they_wait() -> None:
    text = render_summary(
        _facts(
            result={
                "ok": 33, "committed": 33, "bytes": 10, "changed_during_run": 5, "vanished": 2,
                "deferred": [STAGING + f"f{i}.txt" for i in range(7)],
            },
            key_prefixes=(STAGING, "nightly/2026/01/"),
        )
    )
    assert "Committed 33 files" in text and "7 files changed while sent, left for the next run" in text
    assert "| changed while sent (left for the next run) | 5 |" in text
    assert "| vanished while sent (left for the next run) | 2 |" in text
    assert "### Left for the next run (7)" in text and "- `f0.txt`" in text and ".rahcp-staging" not in text
    assert "Failures" not in text


def test_an_interrupted_upload_says_staging_was_kept() -> None:
    text = render_summary(_facts(outcome="interrupted", result={"ok": 20, "bytes": 5, "interrupted": "SIGTERM"}))
    assert "Interrupted (SIGTERM): nothing changed in `archive/nightly/2026/01/`" in text
    assert "| reached staging, kept for the next run | 20 |" in text and "rolled back" not in text.lower()


def test_the_summary_shows_the_range_of_files_and_copies_in_flight() -> None:
    from rahcp_prefect.job.run import RunTotals

    totals = RunTotals()
    totals.add({"ok": 5000, "window_lowest": 10, "window_highest": 40})
    totals.add({"ok": 5000, "window_lowest": 5, "window_highest": 80})  # a throttled batch, then a grown one
    result = totals.as_dict()
    assert result["files_in_flight"] == "5 to 80"
    text = render_summary(_facts(result={**result, "copies_in_flight": "8 to 64"}))
    assert "| files in flight (adaptive window) | 5 to 80 |" in text
    assert "| copies in flight during the commit (adaptive window) | 8 to 64 |" in text
    assert "in flight" not in render_summary(_facts())  # a run without the figures shows no row
