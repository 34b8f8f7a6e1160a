"""Deployable entry point of the ``bulk-download`` flow (see ``rahcp_prefect.flows.download``)."""

from rahcp_prefect.flows import bulk_download

__all__ = ["bulk_download"]

if __name__ == "__main__":
    bulk_download.serve(name="default")
