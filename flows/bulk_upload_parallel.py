"""Deployable entry point of ``bulk-upload-parallel`` (see ``rahcp_prefect.flows.parallel``)."""

from rahcp_prefect.flows import bulk_upload_parallel

__all__ = ["bulk_upload_parallel"]

if __name__ == "__main__":
    bulk_upload_parallel.serve(name="default")
