"""rahcp-prefect: Prefect 3 integration for Hitachi Content Platform."""
