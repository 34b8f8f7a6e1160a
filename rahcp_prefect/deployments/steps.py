"""``prefect.yaml`` steps that keep a project's code in HCP, like prefect-aws's
``push_to_s3`` / ``pull_from_s3``.

``push_to_hcp`` uploads the working directory (what ``prefect deploy`` runs in) to
``bucket/folder``, leaving out what ``.prefectignore`` lists, or, without that file, what
Prefect's default ``.prefectignore`` lists (``.git/``, ``.venv``, ``__pycache__/``...).
``pull_from_hcp`` downloads ``bucket/folder`` into the working directory of the flow run.
Both go through the bulk engine (``HCPBucket``), and take the credentials from a block
reference, resolved by Prefect when the step runs (the password never sits in the YAML):

```yaml
push:
  - rahcp_prefect.deployments.steps.push_to_hcp:
      requires: rahcp-prefect
      bucket: code
      folder: my-project
      credentials: "{{ prefect.blocks.hcp-credentials.hcp }}"
pull:
  - rahcp_prefect.deployments.steps.pull_from_hcp:
      requires: rahcp-prefect
      bucket: code
      folder: my-project
      credentials: "{{ prefect.blocks.hcp-credentials.hcp }}"
```
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, TypedDict

from prefect.utilities.asyncutils import run_coro_as_sync

from rahcp_prefect.blocks import HCPCredentials, HCPTransferSettings
from rahcp_prefect.bucket import HCPBucket


class PushToHCPOutput(TypedDict):
    """What ``push_to_hcp`` returns (later steps can use it as ``{{ step-id.folder }}``)."""

    bucket: str
    folder: str
    files: int


class PullFromHCPOutput(TypedDict):
    """What ``pull_from_hcp`` returns; Prefect runs the flow from ``directory``."""

    bucket: str
    folder: str
    directory: str


def _bucket(
    bucket: str,
    folder: str,
    credentials: dict[str, Any] | HCPCredentials,
    settings: dict[str, Any] | HCPTransferSettings | None,
) -> HCPBucket:
    if isinstance(credentials, str):
        raise TypeError(
            "credentials must be a block reference such as "
            "'{{ prefect.blocks.hcp-credentials.NAME }}' (resolved to the block's fields), not a string"
        )
    return HCPBucket(
        bucket_name=bucket,
        bucket_folder=folder,
        credentials=credentials if isinstance(credentials, HCPCredentials) else HCPCredentials(**credentials),
        settings=settings if settings is None or isinstance(settings, HCPTransferSettings)
        else HCPTransferSettings(**settings),
    )


def default_ignore_file() -> str:
    """Prefect's own ``.prefectignore``, the one ``prefect init`` copies into a project."""
    return str(files("prefect").joinpath(".prefectignore"))


def push_to_hcp(
    bucket: str,
    folder: str,
    credentials: dict[str, Any] | HCPCredentials,
    settings: dict[str, Any] | HCPTransferSettings | None = None,
    ignore_file: str | None = ".prefectignore",
) -> PushToHCPOutput:
    """Upload the working directory to ``bucket/folder`` (without what ``ignore_file`` lists,
    or Prefect's default ignore list when that file does not exist).

    Args:
        bucket: Bucket to upload to; must exist.
        folder: Folder in the bucket for this project's code.
        credentials: The fields of an ``HCPCredentials`` block, usually the reference
            ``"{{ prefect.blocks.hcp-credentials.NAME }}"``.
        settings: The fields of an ``HCPTransferSettings`` block (defaults when empty).
        ignore_file: Gitignore-style file of paths to leave out, relative to the working directory.
    """
    ignore = ignore_file if ignore_file and Path(ignore_file).is_file() else default_ignore_file()
    target = _bucket(bucket, folder, credentials, settings)
    uploaded = run_coro_as_sync(target.aput_directory(str(Path.cwd()), ignore_file=ignore))
    return {"bucket": bucket, "folder": folder, "files": uploaded or 0}


def pull_from_hcp(
    bucket: str,
    folder: str,
    credentials: dict[str, Any] | HCPCredentials,
    settings: dict[str, Any] | HCPTransferSettings | None = None,
) -> PullFromHCPOutput:
    """Download ``bucket/folder`` into the working directory.

    Args:
        bucket: Bucket the code was pushed to.
        folder: Folder in the bucket holding the project's code.
        credentials: The fields of an ``HCPCredentials`` block, usually the reference
            ``"{{ prefect.blocks.hcp-credentials.NAME }}"``.
        settings: The fields of an ``HCPTransferSettings`` block (defaults when empty).
    """
    directory = Path.cwd()
    run_coro_as_sync(_bucket(bucket, folder, credentials, settings).aget_directory(local_path=str(directory)))
    return {"bucket": bucket, "folder": folder, "directory": str(directory)}
