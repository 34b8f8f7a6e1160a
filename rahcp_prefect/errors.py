"""The one root of every error rahcp-prefect raises itself: ``RahcpError``.

Each layer keeps its own classes (``HCPError`` in the SDK, ``TrackerError``, ``BulkFileError``,
``JobError``, ``InvalidInputError``...), and each of them is a ``RahcpError``, so a caller can
catch everything of ours in one ``except`` and still tell the layers apart. Classes that were a
``ValueError`` or a ``RuntimeError`` stay one as well.

A ``RahcpError`` may carry the context it happened in (``bucket``, ``key``, ``job``); what is set
is shown at the end of its message, e.g. ``404 Not Found (bucket 'b', key 'a/b.txt')``. The
context holds names only: never a URL, a password or a token (see ``client.redaction``).
No Prefect import here: the SDK, the tracker, the engine and the job all raise these.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
S = TypeVar("S")
T = TypeVar("T")

CONTEXT_FIELDS = ("bucket", "key", "job")
"""The context an error may carry, in the order its message shows it."""


class RahcpError(Exception):
    """Root of every error rahcp-prefect raises; optional ``bucket``/``key``/``job`` context."""

    bucket: str | None = None
    key: str | None = None
    job: str | None = None

    def __init__(
        self, *args: object, bucket: str | None = None, key: str | None = None, job: str | None = None
    ) -> None:
        super().__init__(*args)
        self.add_context(bucket=bucket, key=key, job=job)

    def add_context(self, *, bucket: str | None = None, key: str | None = None, job: str | None = None) -> None:
        """Fill in the context not set yet (the innermost raiser knows best: never overwritten)."""
        for name, value in (("bucket", bucket), ("key", key), ("job", job)):
            if value is not None and getattr(self, name) is None:
                setattr(self, name, value)

    @property
    def context(self) -> dict[str, str]:
        """The context set on this error, ``{"bucket": ..., "key": ..., "job": ...}`` (set ones)."""
        return {name: value for name in CONTEXT_FIELDS if (value := getattr(self, name)) is not None}

    def with_context(self, text: str) -> str:
        """``text`` followed by the context it does not name yet, e.g. ``text (bucket 'b', key 'k')``.

        A message that already names the object as ``bucket/key`` (the SDK's do), the bucket or
        the job is not made longer by repeating it.
        """
        shown = {name: value for name, value in self.context.items() if not _named_in(text, name, self)}
        if not shown:
            return text
        listed = ", ".join(f"{name} {value!r}" for name, value in shown.items())
        return f"{text} ({listed})" if text else listed

    def __str__(self) -> str:
        return self.with_context(super().__str__())


def _named_in(text: str, name: str, error: RahcpError) -> bool:
    """Whether ``text`` already names the context field ``name`` of ``error``."""
    if name in ("bucket", "key") and error.bucket is not None and error.key is not None:
        return f"{error.bucket}/{error.key}" in text
    value = getattr(error, name)
    return value is not None and value in text


def on_object(method: Callable[Concatenate[S, P], Awaitable[T]]) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """Decorate an async ``method(self, bucket, key, ...)``: a ``RahcpError`` it raises names the
    bucket and the key (unless a deeper raiser named them already)."""
    return _naming(method, 2)


def on_bucket(method: Callable[Concatenate[S, P], Awaitable[T]]) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """Decorate an async ``method(self, bucket, ...)``: a ``RahcpError`` it raises names the bucket."""
    return _naming(method, 1)


def _naming(
    method: Callable[Concatenate[S, P], Awaitable[T]], count: int
) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """Wrap ``method`` so that its first ``count`` arguments after ``self`` (the bucket, then
    the key), given by position or by name, become the context of a ``RahcpError`` it raises."""
    names = list(inspect.signature(method).parameters)[1 : 1 + count]

    @functools.wraps(method)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except RahcpError as exc:
            given = [args[i] if i < len(args) else kwargs.get(name) for i, name in enumerate(names)]
            exc.add_context(**dict(zip(("bucket", "key"), map(_text, given))))
            raise

    return wrapper


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
