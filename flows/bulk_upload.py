"""Deployable entry point of the ``bulk-upload`` flow (see ``rahcp_prefect.flows.upload``)."""

from rahcp_prefect.flows import bulk_upload

__all__ = ["bulk_upload"]

if __name__ == "__main__":
    bulk_upload.serve(name="default")
