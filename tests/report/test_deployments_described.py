"""Runs you can read in a list: every packaged deployment says what it does and is tagged."""

from __future__ import annotations

import yaml

from rahcp_prefect.deployments import prefect_file

PREFECT_YAML = prefect_file()


def test_every_deployment_has_a_description_and_the_rahcp_tag() -> None:
    deployments = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    assert len(deployments) >= 4
    for deployment in deployments:
        entry = deployment["entrypoint"]
        assert len(deployment.get("description", "").split()) >= 20, entry
        assert "rahcp" in deployment.get("tags", []), entry
        if entry.endswith((":bulk_upload", ":bulk_download")):
            assert "summary-<job>" in deployment["description"], entry
