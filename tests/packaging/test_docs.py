"""The reference documentation builds with ``mkdocs build --strict``: a reference to a name that
does not exist, a broken include or a docstring mkdocstrings cannot render fails the suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
MKDOCS_ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent, env=MKDOCS_ENV, capture_output=True, text=True, timeout=540,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = _build(PROJECT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return site


def _anchors(site: Path, page: str) -> set[str]:
    return set(re.findall(r'id="(rahcp_prefect[^"]+)"', (site / page / "index.html").read_text()))


@pytest.mark.parametrize(
    ("page", "names"),
    [
        ("reference/sdk", {"rahcp_prefect.client.HCPClient", "rahcp_prefect.client.HCPClient.login",
                           "rahcp_prefect.client.errors.AuthenticationError"}),
        ("reference/tracker", {"rahcp_prefect.tracker.create_tracker"}),
        ("reference/engine", {"rahcp_prefect.bulk.bulk_upload", "rahcp_prefect.bulk.BulkUploadConfig"}),
        ("reference/blocks", {"rahcp_prefect.blocks.HCPCredentials", "rahcp_prefect.blocks.HCPTracker",
                              "rahcp_prefect.blocks.HCPTransferSettings"}),
        ("reference/tasks", {"rahcp_prefect.tasks"}),
        ("reference/flows", {"rahcp_prefect.flows.bulk_upload", "rahcp_prefect.flows.bulk_download",
                             "rahcp_prefect.flows.bulk_upload_parallel", "rahcp_prefect.flows.cleanup_staging",
                             "rahcp_prefect.flows.bulk_verify"}),
        ("reference/emulator", {"rahcp_prefect.testing.emulator.HCPEmulator"}),
        ("reference/storage", {"rahcp_prefect.bucket.HCPBucket", "rahcp_prefect.bucket.HCPBucket.aread_path",
                               "rahcp_prefect.bucket.FolderTransferError",
                               "rahcp_prefect.deployments.steps.push_to_hcp",
                               "rahcp_prefect.deployments.steps.pull_from_hcp",
                               "rahcp_prefect.events.emit_verify_mismatch"}),
    ],
)
def test_each_layer_has_a_page_rendered_from_its_docstrings(site: Path, page: str, names: set[str]) -> None:
    assert names <= _anchors(site, page)


@pytest.mark.parametrize(("page", "source"), [("reliability", "RELIABILITY.md"), ("benchmarks", "benchmarks/RESULTS.md")])
def test_the_guarantees_and_figures_are_included_not_copied(site: Path, page: str, source: str) -> None:
    """The page holds the file's current text (its headings), and the docs folder no copy of it."""
    headings = [line.lstrip("#").strip() for line in (PROJECT / source).read_text().splitlines() if line.startswith("## ")]
    assert headings, source
    rendered = (site / page / "index.html").read_text()
    for heading in headings[:5]:
        assert heading.split("`")[0].strip()[:30] in rendered, heading
    assert "include-markdown" in (PROJECT / "docs" / f"{page}.md").read_text()


def test_a_reference_to_a_missing_name_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Broken\n\n::: rahcp_prefect.client.NoSuchClient\n")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: broken\nplugins:\n  - mkdocstrings:\n      handlers:\n        python:\n"
        f"          paths: [{PROJECT}]\n"
    )
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "rahcp_prefect.client.NoSuchClient" in result.stdout + result.stderr


MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|tmp)/[\w.-]+")
"""A path that only exists on one machine (a helper's worktree, a scratch folder, a lock file)."""


def test_no_doc_names_a_path_of_one_machine() -> None:
    docs = [PROJECT / name for name in ("README.md", "RELIABILITY.md", "CHANGELOG.md", "benchmarks/RESULTS.md")]
    docs += sorted((PROJECT / "docs").rglob("*.md")) + sorted((PROJECT / "flows").glob("*"))
    found = [f"{path.relative_to(PROJECT)}: {hit}" for path in docs if path.is_file()
             for hit in MACHINE_PATH.findall(path.read_text())]
    assert not found, found


def test_make_bench_runs_every_benchmark() -> None:
    from benchmarks.run_all import BENCHMARKS

    modules = {path.stem for path in (PROJECT / "benchmarks").glob("*.py")} - {"__init__", "run_all"}
    assert set(BENCHMARKS) == modules and len(BENCHMARKS) == len(modules)
    assert {"safe_replace", "throttling"} <= set(BENCHMARKS)
    assert "benchmarks.run_all" in (PROJECT / "Makefile").read_text()
