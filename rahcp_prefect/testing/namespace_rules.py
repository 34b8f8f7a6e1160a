"""HCP's namespace rules, enforced where every write lands: the emulator's S3 server.

A bucket is an HCP namespace. Its settings come from the MAPI store (``mapi_store``), found by
the bucket's name in any tenant; a bucket without a MAPI record has HCP's defaults (versioning
off, overwrite off, no default retention). In ``"hcp"`` mode (the default):

* PUT, copy (PUT with ``x-amz-copy-source``) or CompleteMultipartUpload onto an existing key
  answers **409 Conflict** and stores nothing, unless the namespace is versioned (a new version)
  or its overwrite option is on (the object is replaced). A key that names an existing folder
  (``a`` when ``a/...`` exists) is a 409 unless the namespace is versioned.
* Delete, or overwrite with the overwrite option on, of an object under retention or on hold
  answers **403 AccessDenied**. Retention comes from the namespace's default retention
  (``complianceSettings.retentionDefault``) at the moment the object is stored; it ends at the
  time computed then (``"+3s"``, ``"+1y"``...); ``"-1"`` (and ``"-2"``) never end; ``"0"`` is none.
* CompleteMultipartUpload's EntityTooSmall, InvalidPart and InvalidPartOrder answer **200 OK**
  with the XML error body (botocore, and so the API, turns it into an error: 400 on the API).
  Parts may be as small as 1 MiB (moto's minimum is S3's 5 MiB).

``"s3"`` mode is moto as it is (plain S3: overwrites succeed, nothing is retained) for tests that
need a permissive store. The emulator's own test-helper client (``HCPEmulator.s3``) is the
operator's hand and is never refused, so tests can seed and clean up anything.
Rules are enforced only on the built-in S3 server (not on an external ``s3_endpoint``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from moto.s3.models import FakeKey, s3_backends

from rahcp_prefect.client.namespace import retention_until
from rahcp_prefect.testing.mapi_store import NamespaceStore

MODES = ("hcp", "s3")
DEFAULT_MODE = "hcp"
"""The mode of ``HCPEmulator``, the CLI and the pytest fixtures unless told otherwise."""
HCP_MIN_PART = 1024 * 1024
"""HCP's smallest part (all parts but the last), 1 MiB."""

@dataclass(frozen=True)
class NamespaceSettings:
    """What a namespace does on a write onto an existing key and how long it keeps objects."""

    versioning: bool = False
    overwrite: bool = False
    retention_default: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> NamespaceSettings:
        if record is None:
            return cls()
        versioning = record.get("versioningSettings") or {}
        compliance = record.get("complianceSettings") or {}
        return cls(
            versioning=bool(versioning.get("enabled")),
            overwrite=bool(record.get("overwriteEnabled")),
            retention_default=compliance.get("retentionDefault"),
        )


class Refusal(NamedTuple):
    """An S3 error the data plane answers instead of moto."""

    status: int
    code: str
    message: str

    def xml(self) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>"
        ).encode()


EXISTS = Refusal(409, "Conflict", "The object already exists and the namespace allows no overwrite")
FOLDER = Refusal(409, "Conflict", "The name is an existing folder")
RETAINED = Refusal(403, "AccessDenied", "Access Denied")


@dataclass
class _ObjectState:
    retained_until: float | None
    held: bool = False


class HcpRules:
    """Namespace settings, object retention and holds, and the checks the data plane asks."""

    def __init__(self, namespaces: NamespaceStore, mode: str = "hcp", store: Any = None) -> None:
        """``store``: where buckets live when not in moto (a ``metastore.MetaStore``)."""
        self.namespaces = namespaces
        self.mode = mode
        self._store = store
        self._objects: dict[tuple[str, str], _ObjectState] = {}
        self._folders: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"emulator mode {value!r}: expected one of {', '.join(MODES)}")
        self._mode = value

    @property
    def enforcing(self) -> bool:
        return self._mode == "hcp"

    def settings(self, bucket: str) -> NamespaceSettings:
        return NamespaceSettings.from_record(self.namespaces.find(bucket))

    # -- checks ------------------------------------------------------------------------------

    def write_refusal(self, bucket: str, key: str) -> Refusal | None:
        """Why a PUT/copy/complete of ``bucket/key`` is refused (None: allowed). Turns moto's
        versioning on first when the namespace is versioned."""
        found = self._bucket(bucket)
        if found is None:
            return None  # moto answers NoSuchBucket
        settings = self.settings(bucket)
        if settings.versioning:
            if found.versioning_status != "Enabled":
                found.versioning_status = "Enabled"
            return None
        if self._is_folder(found, key):
            return FOLDER
        if not _exists(found, key):
            return None
        if not settings.overwrite:
            return EXISTS
        return RETAINED if self._protected(bucket, key) else None

    def delete_refusal(self, bucket: str, key: str) -> Refusal | None:
        """Why a delete of ``bucket/key`` is refused (None: allowed)."""
        found = self._bucket(bucket)
        if found is None or not _exists(found, key):
            return None
        return RETAINED if self._protected(bucket, key) else None

    def upload_exists(self, bucket: str, upload_id: str) -> bool:
        """Whether ``upload_id`` is an open multipart upload of ``bucket``."""
        found = self._bucket(bucket)
        return found is not None and upload_id in found.multiparts

    # -- what happened -----------------------------------------------------------------------

    def stored(self, bucket: str, key: str) -> None:
        """An object was stored: its retention starts now, from the namespace default."""
        until = retention_until(self.settings(bucket).retention_default, time.time())
        with self._lock:
            if until is None:  # nothing to keep: no retention, and a new object is not held
                self._objects.pop((bucket, key), None)
            else:
                self._objects[(bucket, key)] = _ObjectState(until)
            folders = self._folders.get(bucket)
            if folders is not None:
                folders.update(_folders_of(key))

    def bucket_deleted(self, bucket: str) -> None:
        with self._lock:
            self._folders.pop(bucket, None)
            for stale in [k for k in self._objects if k[0] == bucket]:
                del self._objects[stale]

    def set_hold(self, bucket: str, key: str, held: bool) -> None:
        """Put an object on hold or release it; KeyError when it does not exist."""
        found = self._bucket(bucket)
        if found is None or not _exists(found, key):
            raise KeyError(key)
        with self._lock:
            state = self._objects.setdefault((bucket, key), _ObjectState(None))
            state.held = held

    def protection(self, bucket: str, key: str) -> dict[str, Any]:
        """``{"hold": bool, "retained_until": epoch | inf | None}`` of an existing object."""
        found = self._bucket(bucket)
        if found is None or not _exists(found, key):
            raise KeyError(key)
        state = self._objects.get((bucket, key)) or _ObjectState(None)
        return {"hold": state.held, "retained_until": state.retained_until}

    def _bucket(self, name: str) -> Any:
        """The bucket the data plane keeps (moto's, or the metadata store's), or None."""
        return _moto_bucket(name) if self._store is None else self._store.bucket(name)

    def _protected(self, bucket: str, key: str) -> bool:
        state = self._objects.get((bucket, key))
        if state is None:
            return False
        return state.held or (state.retained_until is not None and time.time() < state.retained_until)

    def _is_folder(self, found: Any, key: str) -> bool:
        """Whether ``key/`` holds objects (an index built once per bucket, confirmed on a hit)."""
        prefix = key.rstrip("/") + "/"
        with self._lock:
            folders = self._folders.get(found.name)
            if folders is None:
                folders = set()
                for name in list(found.keys.keys()):
                    folders.update(_folders_of(name))
                self._folders[found.name] = folders
            if prefix not in folders:
                return False
        if any(name.startswith(prefix) and _exists(found, name) for name in list(found.keys.keys())):
            return True
        with self._lock:
            folders.discard(prefix)
        return False


def _folders_of(key: str) -> list[str]:
    parts = key.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def _moto_bucket(name: str) -> Any:
    """moto's in-process bucket (the built-in S3 server's state), or None."""
    located = s3_backends.bucket_accounts.get(name)
    if located is None:
        return None
    partition, account = located
    return s3_backends[account][partition].buckets.get(name)


def _exists(bucket: Any, key: str) -> bool:
    """Whether ``key``'s latest version is an object (not missing, not a delete marker)."""
    if hasattr(bucket, "has"):
        return bool(bucket.has(key))  # the metadata store's bucket (objects only)
    try:
        latest = bucket.keys.get(key)
    except KeyError:
        return False
    return isinstance(latest, FakeKey)
