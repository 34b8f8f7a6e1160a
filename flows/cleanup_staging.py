"""Deployable entry point of the ``cleanup-staging`` flow (see ``rahcp_prefect.flows.cleanup``)."""

from rahcp_prefect.flows import cleanup_staging

__all__ = ["cleanup_staging"]

if __name__ == "__main__":
    cleanup_staging.serve(name="default")
