"""One error root: every exception class of the package is a ``RahcpError``, and the SDK's errors
name the bucket and key they were about (never a secret)."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re
from typing import Any

import pytest

import rahcp_prefect
from rahcp_prefect.bulk.validation import InvalidInputError
from rahcp_prefect.client import HCPClient, HCPError, NotFoundError
from rahcp_prefect.client.errors import PresignedTransferError
from rahcp_prefect.errors import RahcpError
from rahcp_prefect.job.errors import JobError, JobMismatchError
from rahcp_prefect.tracker.errors import TrackerConfigError, TrackerError

SIGNATURE_TEXT = re.compile(r"(?i)(X-Amz-Signature|X-Amz-Credential|Signature=|https?://)")


def _package_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of the package (the test emulator aside)."""
    found = []
    for module_info in pkgutil.walk_packages(rahcp_prefect.__path__, "rahcp_prefect."):
        if module_info.name.startswith("rahcp_prefect.testing") or module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.append(value)
    return found


def test_every_public_exception_class_is_a_rahcp_error() -> None:
    classes = _package_exceptions()
    assert len(classes) >= 38  # the five old roots and their subclasses, and the loners
    assert [cls.__qualname__ for cls in classes if issubclass(cls, Exception) and not issubclass(cls, RahcpError)] == []
    # a stop signal is no error: like KeyboardInterrupt, no ``except Exception`` may catch it
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, Exception)] == ["Interrupted"]


def test_the_old_roots_keep_their_builtin_bases_for_callers() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(TrackerConfigError, ValueError) and issubclass(TrackerConfigError, TrackerError)
    assert issubclass(JobError, RuntimeError) and issubclass(JobMismatchError, ValueError)
    assert issubclass(NotFoundError, HCPError)


def test_context_is_shown_once_and_survives_pickling() -> None:
    error = NotFoundError("Not Found", 404, bucket="b1", key="a/b.txt")
    error.add_context(bucket="other", job="nightly")  # the innermost raiser's bucket stays
    assert str(error) == "404 Not Found (bucket 'b1', key 'a/b.txt', job 'nightly')"
    assert error.context == {"bucket": "b1", "key": "a/b.txt", "job": "nightly"}
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status_code, copy.bucket, copy.key, copy.job) == (404, "b1", "a/b.txt", "nightly")
    # a message naming the object already is not made longer
    named = PresignedTransferError("Forbidden for b1/a/b.txt", 403, bucket="b1", key="a/b.txt")
    assert str(named) == "403 Forbidden for b1/a/b.txt"
    assert str(JobError("job 'nightly' is busy", job="nightly")) == "job 'nightly' is busy"


@pytest.mark.timeout(120)
async def test_a_404_on_a_key_names_the_bucket_and_the_key(
    hcp_client: HCPClient, hcp_bucket: str, hcp_credentials: dict[str, Any]
) -> None:
    missing = "dir/not here.txt"
    errors: list[HCPError] = []
    for call in (
        lambda: hcp_client.s3.head(hcp_bucket, missing),
        lambda: hcp_client.s3.download_bytes(hcp_bucket, missing),
        lambda: hcp_client.s3.copy(hcp_bucket, "copy/dest.txt", hcp_bucket, missing),
        lambda: hcp_client.s3.head(bucket=hcp_bucket, key=missing),  # named, not positional
    ):
        with pytest.raises(NotFoundError) as info:
            await call()
        errors.append(info.value)
    for error in errors:
        assert isinstance(error, RahcpError) and error.status_code == 404
        assert error.bucket == hcp_bucket
        assert error.key in (missing, "copy/dest.txt")
        text = str(error)
        assert hcp_bucket in text and error.key in text
        assert hcp_credentials["password"] not in text and hcp_client.token not in text
        assert not SIGNATURE_TEXT.search(text), text
    assert str(errors[0]) == str(errors[3]) == f"404 Not Found (bucket {hcp_bucket!r}, key {missing!r})"
