"""Checks of what a user hands a transfer, made before any request: bucket names, prefixes,
counts, settings overrides, and each file's name and key.

Prefect-free, so the engine configs, the batch tasks and both flows refuse a bad parameter the
same way, with an ``InvalidInputError`` that names the parameter and its value, before the
login and before the tracker job is opened. Per-file checks (``name_problem``,
``key_problem``) return the reason instead of raising: one odd file is a counted error of its
own, never the end of the run.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BeforeValidator

from rahcp_prefect.defaults import MAX_KEY_BYTES  # S3's longest key; the staging prefix counts too
from rahcp_prefect.errors import RahcpError


_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters (Unicode category Cc): C0, DEL and C1."""


class InvalidInputError(RahcpError, ValueError):
    """A parameter that no request should be made with; the message names it and its value."""


# -- whole-run parameters -------------------------------------------------------------------------


def check_bucket(bucket: Any, name: str = "bucket") -> str:
    """``bucket`` if it follows S3's bucket naming rules, else ``InvalidInputError`` saying which.

    3 to 63 characters of lower-case letters, digits, dots and hyphens, beginning and ending
    with a letter or digit, no two dots in a row, not an IP address, none of the prefixes and
    suffixes S3 reserves.
    """
    if not isinstance(bucket, str):
        raise InvalidInputError(f"{name} must be a string, got {type(bucket).__name__} {bucket!r}")
    problem = _bucket_problem(bucket)
    if problem:
        raise InvalidInputError(f"{name} {bucket!r} is not a valid bucket name: {problem}")
    return bucket


def _bucket_problem(bucket: str) -> str | None:
    if not 3 <= len(bucket) <= 63:
        return f"it must be 3 to 63 characters long, not {len(bucket)}"
    if not _BUCKET_CHARS.fullmatch(bucket):
        bad = sorted({c for c in bucket if not (c.islower() and c.isascii() or c.isdigit() or c in ".-")})
        if bad:
            return f"only lower-case letters, digits, dots and hyphens are allowed, not {''.join(bad)!r}"
        return "it must begin and end with a letter or a digit"
    if ".." in bucket:
        return "it must not hold two dots in a row"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "it must not be an IP address"
    for reserved in _BUCKET_PREFIXES:
        if bucket.startswith(reserved):
            return f"the prefix {reserved!r} is reserved"
    for reserved in _BUCKET_SUFFIXES:
        if bucket.endswith(reserved):
            return f"the suffix {reserved!r} is reserved"
    return None


def check_prefix(prefix: Any, name: str = "prefix") -> str:
    """``prefix`` if it is a relative folder path (or empty), else ``InvalidInputError``.

    Refused: a leading ``/``, an empty (``//``), ``.`` or ``..`` segment, a control character,
    text that is not UTF-8, and a prefix that leaves no room for a file name under S3's
    1,024-byte key limit. A prefix need not end in ``/`` (``2025`` then ``2025a.txt``).
    """
    if not isinstance(prefix, str):
        raise InvalidInputError(f"{name} must be a string, got {type(prefix).__name__} {prefix!r}")
    if not prefix:
        return prefix
    problem = _text_problem(prefix)
    if problem is not None:
        problem = f"it {problem}"
    else:
        if prefix.startswith("/"):
            problem = "it must not begin with '/' (keys are relative)"
        elif "//" in prefix:
            problem = "it must not hold '//' (an empty path segment)"
        elif any(segment in (".", "..") for segment in prefix.split("/")):
            problem = "it must not hold a '.' or '..' path segment (HTTP would rewrite the key)"
        elif utf8_length(prefix) >= MAX_KEY_BYTES:
            problem = f"it is {utf8_length(prefix)} bytes of UTF-8 and S3 keys are at most {MAX_KEY_BYTES}"
    if problem:
        raise InvalidInputError(f"{name} '{shown(prefix)}' is refused: {problem}")
    return prefix


def check_count(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an integer within ``[minimum, maximum]``, else ``InvalidInputError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise InvalidInputError(f"{name} must be {bounds}, got {value}")
    return value


def local_folder(name: str, value: Any, *, in_deployment: bool) -> Path:
    """The folder parameter ``name`` as an absolute path.

    A relative path given to a flow called in Python means the caller's current folder. A
    deployment's run starts in the worker's temporary working directory, where a relative
    path could only mean a folder under it that vanishes with the run: refused, naming the
    parameter.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise InvalidInputError(f"{name} must be a folder path, got {value!r}")
    path = Path(value).expanduser()
    if path.is_absolute():
        return Path(os.path.abspath(path))
    if in_deployment:
        raise InvalidInputError(
            f"{name} {str(value)!r} is a relative path: a deployment's run starts in the worker's "
            f"temporary working directory ({os.getcwd()}), where it would mean a folder that vanishes "
            f"with the run; give {name} as an absolute path (e.g. -p {name}=/data/...)"
        )
    return Path(os.path.abspath(path))


def check_job_inputs(bucket: Any, prefix: Any, batch_size: Any) -> None:
    """The parameters every bulk flow takes, checked before the login and the tracker."""
    check_bucket(bucket)
    check_prefix(prefix)
    check_count("batch_size", batch_size)


def check_overrides(overrides: Any, fields: Mapping[str, Any], name: str = "settings_overrides") -> dict[str, Any]:
    """``overrides`` as a dict if it is a mapping whose keys are all among ``fields`` (pydantic
    ``FieldInfo``s) and whose values have their field's type: an ``int`` for an ``int``
    (never a ``bool`` or a ``str``), a number for a ``float``, a ``bool`` for a ``bool``.
    Ranges are left to the model's own validation."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise InvalidInputError(f"{name} must be a mapping of setting names to values, got {overrides!r}")
    unknown = sorted(str(key) for key in overrides if key not in fields)
    if unknown:
        raise InvalidInputError(
            f"{name}: unknown transfer setting(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})"
        )
    for key, value in overrides.items():
        expected = getattr(fields[key], "annotation", None)
        if expected in _SCALARS and not _parses_its_input(fields[key]) and not _SCALARS[expected](value):
            raise InvalidInputError(
                f"{name}: {key} must be {_SCALAR_NAMES[expected]}, got {type(value).__name__} {value!r}"
            )
    return dict(overrides)


def _parses_its_input(info: Any) -> bool:
    """True for a field with a before-validator of its own (e.g. a size that takes "64 MiB"):
    it accepts more than its bare type and names what is wrong itself."""
    return any(isinstance(item, BeforeValidator) for item in getattr(info, "metadata", ()))


_SCALARS: dict[Any, Any] = {
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    bool: lambda v: isinstance(v, bool),
    str: lambda v: isinstance(v, str),
}
_SCALAR_NAMES: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def describe_errors(errors: Sequence[Mapping[str, Any]], name: str) -> str:
    """One line per failed field of a pydantic validation (``exc.errors()``), naming the value."""
    lines = []
    for error in errors:
        field = ".".join(str(part) for part in error.get("loc", ())) or "value"
        lines.append(f"{name}: {field} = {error.get('input')!r}: {error.get('msg')}")
    return "; ".join(lines)


# -- one file -------------------------------------------------------------------------------------


def utf8_length(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (undecodable names counted as the bytes they stand for)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogateescape"))


def shown(text: str) -> str:
    """``text`` as it can be shown, stored and matched by include/exclude patterns.

    Bytes that are not UTF-8 (read with ``surrogateescape``) become ``\\xff``, control
    characters their escape (``\\n``, ``\\x1b``): ``b"\\xff\\xfe.bin"`` is shown ``\\xff\\xfe.bin``.
    Text without either is returned as it is.
    """
    if text.isascii() and text.isprintable():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        raw = text.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be part of an S3 key whatever surrounds it, or None."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid UTF-8 (shown escaped)"
    return "holds a control character" if _CONTROL.search(text) else None


def name_problem(path: str) -> str | None:
    """Why a file path cannot be an S3 key whatever the prefix (not UTF-8, a control
    character), or None."""
    problem = _text_problem(path)
    return f"its name {problem}" if problem else None


def key_room(*prefixes: str) -> int:
    """Bytes left for a file path under the longest of ``prefixes`` (e.g. staging and final)."""
    return MAX_KEY_BYTES - max((utf8_length(prefix) for prefix in prefixes), default=0)


def key_problem(path: str, room: int) -> str | None:
    """Why ``path`` under a prefix that leaves ``room`` bytes makes a key S3 refuses, or None."""
    if len(path) * 4 <= room:  # fast path: even four bytes a character would fit
        return None
    size = utf8_length(path)
    if size <= room:
        return None
    return (
        f"its key would be {size + MAX_KEY_BYTES - room} bytes of UTF-8 with its prefix "
        f"({MAX_KEY_BYTES - room} bytes, staging included); S3 keys are at most {MAX_KEY_BYTES}"
    )


class UnstorableNameError(RahcpError, ValueError):
    """A file whose path cannot become an S3 key: a counted error of that file alone."""
