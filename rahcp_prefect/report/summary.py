"""The summary of a bulk run as markdown: what it did, where the data went, what failed.

Driven by the run's result fields (the dict the flows return): a field is shown when present
and left out when absent, so counts that other parts of the job add (``new``, ``changed``,
``verified``...) appear without this module knowing where they come from. A run that committed
nothing never shows a "transferred" count next to its rollback: what reached staging is said to
be gone (upload) or kept for the next run (download).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .format import (
    format_bytes,
    format_count,
    format_duration,
    format_rate,
    plural,
    relative_key,
    without_staging,
)
from .phases import PHASES
from .throttle import FIRST_FAILURES

SUCCESS = ("committed", "complete", "partial")
"""Outcomes after which the destination holds the run's files."""

COUNT_LABELS: dict[str, str] = {
    "new": "new files",
    "changed": "changed files",
    "missing": "missing from the bucket (sent again)",
    "unchanged": "unchanged files",
    "skipped": "already done (skipped)",
    "changed_during_run": "changed while sent (left for the next run)",
    "vanished": "vanished while sent (left for the next run)",
    "failed": "failed",
    "errors": "failed",
    "unwritable": "cannot be written here (unwritable)",
    "deleted_at_source": "deleted at the source (object kept)",
    "mirror_deleted": "deleted from the final prefix (mirror_deletions)",
    "mirror_retained": "retained, not deleted (mirror_deletions)",
    "committed": "committed to the final prefix",
    "moved": "moved into the destination",
    "verified": "verified",
    "unverified": "not verified",
    "deleted_staging": "staged objects deleted",
    "kept_staging": "staged objects kept",
    "retries": "transfers retried",
    "api_retries": "API requests retried",
    "throttled": "requests throttled (retried)",
}
"""Result fields shown as counts, in this order, with the words an operator reads."""

IN_FLIGHT_LABELS: dict[str, str] = {
    "files_in_flight": "files in flight (adaptive window)",
    "copies_in_flight": "copies in flight during the commit (adaptive window)",
}
"""Result fields holding the range of an adaptive window during the run, e.g. ``10 to 64``."""

NOT_COUNTS = frozenset(
    {"ok", "done", "bytes", "elapsed", "mb_per_sec", "files_per_sec", "dry_run", "phases"}
)
"""Numeric result fields that are not counts of their own (shown elsewhere or derived)."""


@dataclass
class RunFacts:
    """What the summary needs beyond the result fields: where, who, and what went wrong."""

    direction: str
    """``"upload"`` or ``"download"``."""
    job: str
    bucket: str
    prefix: str
    endpoint: str
    outcome: str
    """``committed``, ``complete``, ``rolled back``, ``kept`` (staging kept, nothing changed),
    ``interrupted`` (cancelled or signalled: staging kept), ``failed`` or ``left to another run``."""
    result: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    dest_dir: str | None = None
    phases: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    elapsed: float = 0.0
    errors: Sequence[tuple[str, str]] = ()
    """``(key, reason)`` of failed files (at least the first ``FIRST_FAILURES``)."""
    error_count: int | None = None
    """How many files failed in all (default: ``len(errors)``)."""
    key_prefixes: tuple[str, ...] = ()
    """Prefixes taken off keys before they are shown (staging first, then the final prefix)."""
    reason: str | None = None
    """Why the run failed, when it did (an exception text, already free of secrets)."""
    tracker: str | None = None
    """Where the job's tracker lives, for people (never a DSN with its password)."""
    full_list: str | None = None
    """A command that lists every failure of the job."""

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESS

    @property
    def failures(self) -> int:
        if self.error_count is not None:
            return self.error_count
        fields = [self.result.get(name) for name in ("failed", "errors")]
        counted = max((int(value) for value in fields if isinstance(value, int)), default=0)
        return max(counted, len(self.errors))


def where(bucket: str, prefix: str) -> str:
    """``bucket/prefix`` as shown in text (the bucket's root when ``prefix`` is empty)."""
    return f"{bucket}/{prefix}"


def headline(facts: RunFacts) -> str:
    """One sentence: what happened, how much, where to."""
    result, target = facts.result, code(where(facts.bucket, facts.prefix))
    size = format_bytes(int(result.get("bytes", 0) or 0))
    failed = facts.failures
    failed_text = f", {plural(failed, 'file')} failed" if failed else ""
    unchanged = _unchanged(result)
    unchanged_text = f"; {format_count(unchanged)} unchanged" if unchanged else ""
    if facts.direction == "upload":
        if facts.outcome == "committed":
            committed = int(result.get("committed", result.get("ok", 0)) or 0)
            deferred = sum(int(result.get(name, 0) or 0) for name in ("changed_during_run", "vanished"))
            deferred_text = f"; {plural(deferred, 'file')} changed while sent, left for the next run" if deferred else ""
            return (
                f"Committed {plural(committed, 'file')} ({size}) to {target} "
                f"on {facts.endpoint}{unchanged_text}{deferred_text}"
            )
        if facts.outcome == "left to another run":
            sent = int(result.get("ok", 0) or 0)
            return (
                f"Uploaded {plural(sent, 'file')} ({size}) into the staging of job {code(facts.job)}; "
                f"the commit to {target} on {facts.endpoint} is left to the run holding the job's lock"
            )
        if facts.outcome == "commit interrupted":
            return (
                f"Commit interrupted: part of the files may already be in {target} on {facts.endpoint}; "
                "the next run of the job finishes the commit"
            )
        if facts.outcome == "interrupted":
            why = result.get("interrupted") or "stopped from outside"
            return (
                f"Interrupted ({why}): nothing changed in {target} on {facts.endpoint}; staging and the "
                "done marks kept, the next run sends only what is missing"
            )
        verb = "Rolled back" if facts.outcome == "rolled back" else "Not committed"
        text = f"{verb}: nothing changed in {target} on {facts.endpoint}{failed_text}"
        if facts.outcome == "kept":
            text += "; staging kept for the next run of the job"
        return text
    dest = code(facts.dest_dir or "?")
    if facts.outcome in ("complete", "partial"):
        count = int(result.get("ok", 0) or 0)
        unwritable = int(result.get("unwritable", 0) or 0)
        missing_text = f"; {plural(unwritable, 'object')} cannot be written here (unwritable)" if unwritable else ""
        return (
            f"Downloaded {plural(count, 'file')} ({size}) from {target} on {facts.endpoint} "
            f"into {dest}{unchanged_text}{missing_text}"
        )
    if facts.outcome == "left to another run":
        return f"Downloaded into the shared staging of job {code(facts.job)}; the run holding the lock moves it into {dest}"
    return f"Failed: {dest} untouched{failed_text}; files that arrived are kept in staging for the next run"


def _unchanged(result: Mapping[str, Any]) -> int:
    for name in ("unchanged", "skipped"):
        value = result.get(name)
        if isinstance(value, int) and value:
            return value
    return 0


def count_rows(facts: RunFacts) -> list[tuple[str, str]]:
    """``(what, how many)`` for every count the result holds."""
    result = facts.result
    rows: list[tuple[str, str]] = []
    sent = result.get("ok")
    if isinstance(sent, int):
        if facts.succeeded or facts.outcome == "left to another run":
            rows.append(("uploaded" if facts.direction == "upload" else "downloaded", format_count(sent)))
        elif facts.direction == "upload" and facts.outcome == "rolled back":
            rows.append(("reached staging, deleted by the rollback", format_count(sent)))
        else:
            rows.append(("reached staging, kept for the next run", format_count(sent)))
    seen_failed = False
    for name, label in COUNT_LABELS.items():
        value = result.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name in ("failed", "errors"):
            if seen_failed:
                continue
            seen_failed = True
            value = facts.failures
        rows.append((label, format_count(int(value))))
    for name, value in result.items():
        if name in COUNT_LABELS or name in NOT_COUNTS or isinstance(value, bool):
            continue
        if isinstance(value, int):
            rows.append((name.replace("_", " "), format_count(value)))
    rows += [(label, str(result[name])) for name, label in IN_FLIGHT_LABELS.items() if result.get(name)]
    if isinstance(result.get("bytes"), int):
        sent_bytes = int(result["bytes"])
        label = "bytes sent" if facts.direction == "upload" else "bytes received"
        if not facts.succeeded and facts.direction == "upload":
            label += " to staging" + (" (deleted)" if facts.outcome == "rolled back" else "")
        rows.append((label, f"{format_bytes(sent_bytes)} ({format_count(sent_bytes)} bytes)"))
    return rows


def phase_rows(facts: RunFacts) -> list[tuple[str, str, str, str, str]]:
    """``(phase, duration, files, size, rate)`` of every timed phase, in run order."""
    rows = []
    names = [name for name in PHASES if name in facts.phases]
    names += [name for name in facts.phases if name not in PHASES]
    for name in names:
        phase = facts.phases[name]
        seconds = float(phase.get("seconds", 0.0))
        files, size = int(phase.get("files", 0)), int(phase.get("bytes", 0))
        if size and name == "transfer":
            rate = f"{format_rate(size, seconds)} ({format_rate(files, seconds, 'files')})"
        else:
            rate = format_rate(files, seconds, "files")
        rows.append((name, format_duration(seconds), format_count(files), format_bytes(size) if size else "-", rate))
    return rows


def failure_section(facts: RunFacts, limit: int = FIRST_FAILURES) -> list[str]:
    """The first ``limit`` failures (keys relative to the prefix, reasons in full), then how
    many more and the command that lists them all."""
    total = facts.failures
    if not total:
        return []
    lines = [f"### Failures ({format_count(total)})", "", "| file | reason |", "|---|---|"]
    for key, reason in list(facts.errors)[:limit]:
        lines.append(f"| {cell(code(relative_key(key, *facts.key_prefixes)))} | {cell(without_staging(reason))} |")
    shown = min(limit, len(facts.errors))
    more = total - shown
    lines.append("")
    if more > 0:
        listing = f" {code(facts.full_list)} lists them all." if facts.full_list else ""
        lines.append(f"... and {format_count(more)} more.{listing}")
    elif facts.full_list:
        lines.append(f"The job's failures, any time: {code(facts.full_list)}")
    return lines



def deferred_section(facts: RunFacts) -> list[str]:
    """The files left for the next run because they changed or vanished while sent (named as
    the result names them), never failures."""
    names = [str(key) for key in facts.result.get("deferred") or []]
    if not names:
        return []
    total = sum(int(facts.result.get(name, 0) or 0) for name in ("changed_during_run", "vanished"))
    lines = [f"### Left for the next run ({format_count(max(total, len(names)))})", ""]
    lines += [f"- {code(relative_key(key, *facts.key_prefixes))}" for key in names]
    if total > len(names):
        lines.append(f"- ... and {format_count(total - len(names))} more")
    return lines + ["", "They changed or vanished while they were sent; the next run of the job sends them.", ""]


def render_summary(facts: RunFacts) -> str:
    """The whole summary as markdown."""
    title = "Upload" if facts.direction == "upload" else "Download"
    lines = [f"## {title} {facts.outcome}: {facts.job}", "", f"**{headline(facts)}**", ""]
    lines += notice_lines(facts)
    if facts.reason and not facts.succeeded and not facts.errors:  # else the failures say why
        lines += [f"Why: {without_staging(facts.reason)}", ""]
    counts = count_rows(facts)
    if counts:
        lines += ["| count | value |", "|---|---|"] + [f"| {cell(a)} | {cell(b)} |" for a, b in counts] + [""]
    phases = phase_rows(facts)
    if phases:
        lines += ["| phase | duration | files | size | rate |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(cell(part) for part in row) + " |" for row in phases]
        lines += [f"| whole run | {format_duration(facts.elapsed)} | | | |", ""]
    lines += retained_lines(facts)
    lines += detail_lines(facts)
    lines += deferred_section(facts)
    lines += failure_section(facts)
    return "\n".join(lines).rstrip() + "\n"


NAMED = 20
"""How many paths a notice names before it says how many more."""


def _names(paths: Sequence[str], total: int) -> str:
    shown = ", ".join(code(path) for path in list(paths)[:NAMED])
    more = total - min(NAMED, len(paths))
    return shown + (f" and {format_count(more)} more" if more > 0 else "")


def notice_lines(facts: RunFacts) -> list[str]:
    """What an archive's operator must not miss, right under the headline: files deleted at
    the source (and what ``mirror_deletions`` did with them)."""
    result = facts.result
    deleted = int(result.get("deleted_at_source", 0) or 0)
    if not deleted:
        return []
    paths = list(result.get("deleted_at_source_keys") or [])
    mirrored = int(result.get("mirror_deleted", 0) or 0)
    kept = "their objects and manifest lines are kept" if not mirrored else (
        f"{plural(mirrored, 'object')} deleted from the final prefix (mirror_deletions)"
    )
    lines = [f"**{plural(deleted, 'file')} deleted at the source since the job sent them; {kept}:** {_names(paths, deleted)}"]
    held = result.get("mirror_held_back")
    if held:
        lines.append(f"mirror_deletions deleted nothing: {held}.")
    retained = list(result.get("mirror_retained_keys") or [])
    if retained:
        lines.append(f"Retained by the namespace, not deleted: {_names(retained, len(retained))}.")
    failed = dict(result.get("mirror_failed_keys") or {})
    if failed:
        lines.append(f"Could not be deleted: {_names(sorted(failed), len(failed))}.")
    return [line for text in lines for line in (text, "")]


def retained_lines(facts: RunFacts) -> list[str]:
    """The files the namespace would not let the commit replace, and staging it keeps."""
    lines: list[str] = []
    retained = facts.result.get("retained_files") or []
    if retained:
        count = int(facts.result.get("retained", len(retained)) or 0)
        lines.append(
            f"Retained: {plural(count, 'changed file')} not replaced (the archived object is under retention "
            "or on hold; the next run tries again): " + ", ".join(code(key) for key in retained)
            + (" ..." if count > len(retained) else "")
        )
    if facts.result.get("staging_kept"):
        lines.append(f"Staging kept: {plural(int(facts.result['staging_kept']), 'object')} ({facts.result.get('staging_kept_why', 'retention')})")
    return lines + [""] if lines else []


def detail_lines(facts: RunFacts) -> list[str]:
    """Where from, where to, the job and its tracker."""
    details = [("job", code(facts.job))]
    if facts.direction == "upload":
        if facts.source:
            details.append(("source folder", code(facts.source)))
        details.append(("destination", f"{code(where(facts.bucket, facts.prefix))} on {facts.endpoint}"))
    else:
        details.append(("source", f"{code(where(facts.bucket, facts.prefix))} on {facts.endpoint}"))
        if facts.dest_dir:
            details.append(("destination folder", code(facts.dest_dir)))
    if facts.tracker:
        details.append(("tracker", facts.tracker))
    return [f"- {name}: {value}" for name, value in details] + [""]


def code(text: str) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    text = str(text).replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (pipes escaped, one line)."""
    return str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
