"""The metadata-only store: S3 objects without their bytes, so a million of them fit in memory.

``HCPEmulator(store="metadata")`` serves its data plane and its API from this store instead of
moto (see ``metaserver`` for the data plane). Each object keeps its key, size, ETag (the MD5 of
the bytes that were sent, or S3's ``md5-of-md5s-N`` for a multipart upload), the time it was
stored and the ``x-amz-checksum-*`` digests that came with it; the bytes are hashed as they
arrive and dropped. What this means for a client:

- uploads, copies, listings (1,000 keys a page, S3's UTF-8 byte order), HEADs and deletes
  behave as on S3, with HCP's namespace rules (``namespace_rules``) as in the default store;
- a GET answers zeros of the object's length (ranges too): the length is right, the bytes are
  not, so a download "works" and a digest check of it fails. Use it to measure uploads;
- except for the keys matching ``keep`` (by default ``*manifest*`` and ``*rahcp*``: the records a
  job writes beside its files and reads back), whose bytes are kept and served as written;
- only the latest version of a key is kept (a versioned namespace's copy-over replaces it).

``MetaS3Client`` is the in-process, boto3-shaped client the API routes call (no HTTP, no boto3
parsing: at a million objects the API must not be what is measured).
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import threading
import time
from fnmatch import fnmatchcase
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from rahcp_prefect.testing.assembly import S3_UPLOAD_PART_MIN_SIZE
from rahcp_prefect.testing.namespace_rules import HCP_MIN_PART
from rahcp_prefect.testing.sortedkeys import SortedKeys

_TIME0 = datetime.fromtimestamp(0, timezone.utc)
OWNER = {"DisplayName": "webfile", "ID": "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"}
"""The owner every listed object has (moto's default account, as the default store shows)."""


@dataclass(slots=True)
class MetaObject:
    """What is kept of one object: no bytes."""

    size: int
    etag: str
    """Quoted, as S3 sends it."""
    stored_at: float
    checksums: tuple[tuple[str, str], ...] = ()
    """``x-amz-checksum-*`` headers sent with it, as (name, value)."""
    body: bytes | None = None
    """The bytes, only for a key the store keeps them of (``MetaStore.keeps``)."""

    @property
    def last_modified(self) -> datetime:
        return datetime.fromtimestamp(self.stored_at, timezone.utc)


@dataclass
class MetaUpload:
    """An open multipart upload: the parts' sizes and ETags."""

    key: str
    initiated: float
    parts: dict[int, tuple[int, str]] = field(default_factory=dict)
    bodies: dict[int, bytes] = field(default_factory=dict)  # only for a key whose bytes are kept


class MetaBucket:
    """One bucket: objects by key, their sorted index, open uploads.

    ``keys``, ``name``, ``versioning_status`` and ``multiparts`` are what ``HcpRules`` reads of a
    moto bucket; ``has`` tells it whether an object exists.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = time.time()
        self.versioning_status: str | None = None
        self.keys: dict[str, MetaObject] = {}
        self.order = SortedKeys()
        self.multiparts: dict[str, MetaUpload] = {}

    def has(self, key: str) -> bool:
        return key in self.keys

    def put(self, key: str, obj: MetaObject) -> None:
        if key not in self.keys:
            self.order.add(key)
        self.keys[key] = obj

    def remove(self, key: str) -> bool:
        if self.keys.pop(key, None) is None:
            return False
        self.order.discard(key)
        return True


def client_error(code: str, message: str, status: int, operation: str) -> ClientError:
    """The botocore error boto3 would raise (``storage.s3_call`` maps it to the API's answer)."""
    error = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(error, operation)  # type: ignore[arg-type]


def etag_of(md5: bytes) -> str:
    return f'"{md5.hex()}"'


def multipart_etag(etags: list[str]) -> str:
    """S3's ETag of a completed multipart upload: MD5 of the parts' MD5s, ``-`` their count."""
    joined = b"".join(bytes.fromhex(tag.strip('"')) for tag in etags)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(etags)}"'


KEEP_BYTES = ("*manifest*", "*rahcp*")
"""Keys (globs) whose bytes the store keeps by default: the records a job writes and reads back
(its manifest, its files' times), never the files themselves."""


class MetaStore:
    """Every bucket, behind one lock (each operation is a few dict and bisect steps).

    ``keep``: globs (``fnmatch``, on the whole key) of the keys whose bytes are kept after all,
    so what a client writes to read back (a job's manifest) reads back as written.
    """

    def __init__(self, keep: tuple[str, ...] = KEEP_BYTES) -> None:
        self.lock = threading.RLock()
        self.buckets: dict[str, MetaBucket] = {}
        self.keep = tuple(keep)

    def keeps(self, key: str) -> bool:
        return any(fnmatchcase(key, pattern) for pattern in self.keep)

    def bucket(self, name: str) -> MetaBucket | None:
        return self.buckets.get(name)

    def require(self, name: str, operation: str) -> MetaBucket:
        found = self.buckets.get(name)
        if found is None:
            raise client_error("NoSuchBucket", "The specified bucket does not exist", 404, operation)
        return found

    def object(self, bucket: str, key: str, operation: str) -> MetaObject:
        found = self.require(bucket, operation).keys.get(key)
        if found is None:
            raise client_error("NoSuchKey", "The specified key does not exist.", 404, operation)
        return found

    def store(
        self,
        bucket: str,
        key: str,
        size: int,
        etag: str,
        checksums: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
    ) -> MetaObject:
        obj = MetaObject(size, etag, time.time(), checksums, body if self.keeps(key) else None)
        with self.lock:
            self.require(bucket, "PutObject").put(key, obj)
        return obj


class MetaS3Client:
    """The boto3 calls the emulator's API makes, served in process from a ``MetaStore``.

    ``rules`` (HCP's namespace rules) apply to writes and deletes unless ``operator`` (the
    test's own hand, ``HCPEmulator.s3``, which they never refuse).
    """

    def __init__(self, store: MetaStore, signer: Any, rules: Any = None, operator: bool = False) -> None:
        self._store = store
        self._signer = signer
        self._rules = rules
        self._operator = operator

    # -- buckets -----------------------------------------------------------------------------

    def list_buckets(self) -> dict[str, Any]:
        with self._store.lock:
            found = sorted(self._store.buckets.values(), key=lambda b: b.name)
        return {"Buckets": [{"Name": b.name, "CreationDate": datetime.fromtimestamp(b.created, timezone.utc)} for b in found]}

    def create_bucket(self, Bucket: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        with self._store.lock:
            if Bucket in self._store.buckets:
                raise client_error("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.", 409, "CreateBucket")
            self._store.buckets[Bucket] = MetaBucket(Bucket)
        return {"Location": f"/{Bucket}"}

    def head_bucket(self, Bucket: str) -> dict[str, Any]:  # noqa: N803
        if Bucket not in self._store.buckets:
            raise client_error("404", "Not Found", 404, "HeadBucket")
        return {}

    def delete_bucket(self, Bucket: str) -> dict[str, Any]:  # noqa: N803
        with self._store.lock:
            found = self._store.require(Bucket, "DeleteBucket")
            if found.keys or found.multiparts:
                raise client_error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409, "DeleteBucket")
            del self._store.buckets[Bucket]
        if self._rules is not None:
            self._rules.bucket_deleted(Bucket)
        return {}

    # -- objects -----------------------------------------------------------------------------

    def _write_allowed(self, bucket: str, key: str, operation: str) -> None:
        if self._rules is None or self._operator or not self._rules.enforcing:
            return
        refusal = self._rules.write_refusal(bucket, key)
        if refusal is not None:
            raise client_error(refusal.code, refusal.message, refusal.status, operation)

    def _stored(self, bucket: str, key: str) -> None:
        if self._rules is not None:
            self._rules.stored(bucket, key)

    def put_object(self, Bucket: str, Key: str, Body: bytes | str = b"", **_: Any) -> dict[str, Any]:  # noqa: N803
        data = Body.encode() if isinstance(Body, str) else bytes(Body)
        with self._store.lock:
            self._store.require(Bucket, "PutObject")
            self._write_allowed(Bucket, Key, "PutObject")
            obj = self._store.store(Bucket, Key, len(data), etag_of(hashlib.md5(data).digest()), body=data)
        self._stored(Bucket, Key)
        return {"ETag": obj.etag}

    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        try:
            obj = self._store.object(Bucket, Key, "HeadObject")
        except ClientError:
            raise client_error("404", "Not Found", 404, "HeadObject") from None
        return {
            "ContentLength": obj.size,
            "ContentType": "application/octet-stream",
            "ETag": obj.etag,
            "LastModified": obj.last_modified,
        }

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        """The object's bytes when kept, else its length in zeros."""
        obj = self._store.object(Bucket, Key, "GetObject")
        body = obj.body if obj.body is not None else bytes(obj.size)
        return {**self.head_object(Bucket=Bucket, Key=Key), "Body": io.BytesIO(body)}

    def copy_object(self, Bucket: str, Key: str, CopySource: dict[str, str], **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._store.lock:
            source = self._store.object(CopySource["Bucket"], CopySource["Key"], "CopyObject")
            self._store.require(Bucket, "CopyObject")
            self._write_allowed(Bucket, Key, "CopyObject")
            obj = self._store.store(Bucket, Key, source.size, source.etag, source.checksums, source.body)
        self._stored(Bucket, Key)
        return {"CopyObjectResult": {"ETag": obj.etag, "LastModified": obj.last_modified}}

    def _delete_allowed(self, bucket: str, key: str) -> None:
        if self._rules is None or self._operator or not self._rules.enforcing:
            return
        refusal = self._rules.delete_refusal(bucket, key)
        if refusal is not None:
            raise client_error(refusal.code, refusal.message, refusal.status, "DeleteObject")

    def delete_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._store.lock:
            found = self._store.require(Bucket, "DeleteObject")
            self._delete_allowed(Bucket, Key)
            found.remove(Key)
        return {}

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        deleted: list[dict[str, str]] = []
        errors: list[dict[str, str]] = []
        with self._store.lock:
            found = self._store.require(Bucket, "DeleteObjects")
            for item in Delete.get("Objects", []):
                try:
                    self._delete_allowed(Bucket, item["Key"])
                except ClientError as exc:
                    err = exc.response["Error"]
                    errors.append({"Key": item["Key"], "Code": str(err.get("Code")), "Message": str(err.get("Message"))})
                    continue
                found.remove(item["Key"])
                deleted.append({"Key": item["Key"]})
        return {"Errors": errors} if Delete.get("Quiet") else {"Deleted": deleted, "Errors": errors}

    # -- listings ----------------------------------------------------------------------------

    def list_objects_v2(
        self,
        Bucket: str,  # noqa: N803
        MaxKeys: int = 1000,  # noqa: N803
        Prefix: str | None = None,  # noqa: N803
        Delimiter: str | None = None,  # noqa: N803
        ContinuationToken: str | None = None,  # noqa: N803
        StartAfter: str | None = None,  # noqa: N803
        FetchOwner: bool = False,  # noqa: N803
        **_: Any,
    ) -> dict[str, Any]:
        """One page in S3's order; the continuation token is the last key or prefix returned."""
        prefix = Prefix or ""
        after = _token_key(ContinuationToken) if ContinuationToken else (StartAfter or "")
        limit = max(0, min(int(MaxKeys), 1000))
        contents: list[dict[str, Any]] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        with self._store.lock:
            found = self._store.require(Bucket, "ListObjectsV2")
            start, inclusive = (after, False) if after > prefix else (prefix, True)
            walk = found.order.from_key(start, inclusive)
            for key in walk:
                if not key.startswith(prefix):
                    break
                if Delimiter:
                    cut = key.find(Delimiter, len(prefix))
                    if cut >= 0:
                        common = key[: cut + len(Delimiter)]
                        if prefixes and prefixes[-1] == common:
                            continue
                        if len(contents) + len(prefixes) == limit:
                            truncated = True
                            break
                        prefixes.append(common)
                        last = common
                        continue
                if len(contents) + len(prefixes) == limit:
                    truncated = True
                    break
                obj = found.keys[key]
                item = {"Key": key, "LastModified": obj.last_modified, "ETag": obj.etag, "Size": obj.size, "StorageClass": "STANDARD"}
                if FetchOwner:
                    item["Owner"] = OWNER
                contents.append(item)
                last = key
        if prefixes and last == prefixes[-1]:
            last = last + "\U0010ffff"  # after every key under that prefix
        page: dict[str, Any] = {
            "Contents": contents,
            "CommonPrefixes": [{"Prefix": p} for p in prefixes],
            "IsTruncated": truncated,
            "KeyCount": len(contents) + len(prefixes),
            "MaxKeys": limit,
            "Name": Bucket,
            "Prefix": prefix,
        }
        if truncated:
            page["NextContinuationToken"] = _key_token(last)
        return page

    def list_object_versions(self, Bucket: str, MaxKeys: int = 1000, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        """The latest (only) version of each key, ``VersionId`` "null"; no delete markers."""
        page = self.list_objects_v2(Bucket=Bucket, MaxKeys=MaxKeys, Prefix=kwargs.get("Prefix"))
        versions = [{**item, "VersionId": "null", "IsLatest": True} for item in page["Contents"]]
        return {"Versions": versions, "DeleteMarkers": [], "IsTruncated": page["IsTruncated"]}

    def get_paginator(self, name: str) -> _Paginator:
        if name != "list_objects_v2":
            raise NotImplementedError(f"the metadata store paginates list_objects_v2 only, not {name}")
        return _Paginator(self)

    def generate_presigned_url(self, *args: Any, **kwargs: Any) -> str:
        return str(self._signer.generate_presigned_url(*args, **kwargs))

    # -- multipart ---------------------------------------------------------------------------

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        upload_id = secrets.token_urlsafe(24)
        with self._store.lock:
            self._store.require(Bucket, "CreateMultipartUpload").multiparts[upload_id] = MetaUpload(Key, time.time())
        return {"Bucket": Bucket, "Key": Key, "UploadId": upload_id}

    def _upload(self, bucket: str, upload_id: str, operation: str) -> MetaUpload:
        found = self._store.require(bucket, operation).multiparts.get(upload_id)
        if found is None:
            raise client_error("NoSuchUpload", "The specified upload does not exist.", 404, operation)
        return found

    def list_parts(self, Bucket: str, Key: str, UploadId: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._store.lock:
            upload = self._upload(Bucket, UploadId, "ListParts")
            parts = [
                {"PartNumber": n, "Size": size, "ETag": tag, "LastModified": _TIME0}
                for n, (size, tag) in sorted(upload.parts.items())
            ]
        return {"Parts": parts, "IsTruncated": False, "UploadId": UploadId, "Key": Key}

    def list_multipart_uploads(self, Bucket: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._store.lock:
            found = self._store.require(Bucket, "ListMultipartUploads")
            uploads = [
                {"Key": u.key, "UploadId": uid, "Initiated": datetime.fromtimestamp(u.initiated, timezone.utc)}
                for uid, u in sorted(found.multiparts.items(), key=lambda item: (item[1].key, item[1].initiated))
            ]
        return {"Uploads": uploads, "IsTruncated": False}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._store.lock:
            self._upload(Bucket, UploadId, "AbortMultipartUpload")
            del self._store.buckets[Bucket].multiparts[UploadId]
        return {}

    def complete_multipart_upload(
        self, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict[str, Any], minimum: int | None = None, **_: Any  # noqa: N803
    ) -> dict[str, Any]:
        """Join the parts named (in order, each but the last at least ``minimum`` bytes: by
        default HCP's 1 MiB where its rules apply, else S3's 5 MiB)."""
        if minimum is None:
            hcp = self._rules is not None and self._rules.enforcing
            minimum = HCP_MIN_PART if hcp else S3_UPLOAD_PART_MIN_SIZE
        wanted = [(int(p["PartNumber"]), str(p["ETag"])) for p in MultipartUpload.get("Parts", [])]
        with self._store.lock:
            upload = self._upload(Bucket, UploadId, "CompleteMultipartUpload")
            numbers = [n for n, _ in wanted]
            if not wanted or numbers != sorted(set(numbers)):
                raise client_error("InvalidPartOrder", "The list of parts was not in ascending order.", 400, "CompleteMultipartUpload")
            sizes = []
            for number, tag in wanted:
                part = upload.parts.get(number)
                if part is None or part[1].strip('"') != tag.strip('"'):
                    raise client_error("InvalidPart", "One or more of the specified parts could not be found.", 400, "CompleteMultipartUpload")
                sizes.append(part[0])
            if any(size < minimum for size in sizes[:-1]):
                raise client_error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.", 400, "CompleteMultipartUpload")
            self._write_allowed(Bucket, Key, "CompleteMultipartUpload")
            etag = multipart_etag([upload.parts[n][1] for n in numbers])
            body = b"".join(upload.bodies.get(n, b"") for n in numbers) if upload.bodies else None
            self._store.store(Bucket, Key, sum(sizes), etag, body=body)
            del self._store.buckets[Bucket].multiparts[UploadId]
        self._stored(Bucket, Key)
        return {"Bucket": Bucket, "Key": Key, "ETag": etag}


class _Paginator:
    def __init__(self, client: MetaS3Client) -> None:
        self._client = client

    def paginate(self, **kwargs: Any) -> Any:
        token = None
        while True:
            page = self._client.list_objects_v2(**kwargs, **({"ContinuationToken": token} if token else {}))
            yield page
            if not page["IsTruncated"]:
                return
            token = page["NextContinuationToken"]


def _key_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8", "surrogatepass")).decode("ascii")


def _token_key(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8", "surrogatepass")
    except ValueError:
        raise client_error("InvalidArgument", "The continuation token provided is incorrect", 400, "ListObjectsV2") from None
