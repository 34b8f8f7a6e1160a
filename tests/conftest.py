"""Shared fixtures: the HCP emulator over a real moto S3 server, a real PostgreSQL, and one
Prefect API per session with saved blocks for flow tests."""

pytest_plugins = [
    "rahcp_prefect.testing.fixtures",
    "rahcp_prefect.testing.postgres",
    "rahcp_prefect.testing.prefect_fixtures",
]
