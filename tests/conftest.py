"""Shared fixtures: the HCP emulator over a real moto S3 server, and a real PostgreSQL."""

pytest_plugins = ["rahcp_prefect.testing.fixtures", "rahcp_prefect.testing.postgres"]
