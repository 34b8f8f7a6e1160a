"""moto's objects freed once deleted, so the emulator's memory follows what the bucket holds.

moto (5.x) appends every ``FakeKey`` and ``FakeMultipart`` it makes, and the ACL each key gets
(``FakeAcl``, ``FakeGrant``, ``FakeGrantee``), to a class-level list,
``instances_tracked``, so that its ``reset`` can dispose of them all. Nothing ever takes them
out: an object deleted or overwritten keeps its bytes and its metadata in memory for the life
of the process, and every cyclic garbage collection walks them again. A night of benchmark
runs (each upload staged, copied, deleted) grew the emulator by 15 MB per 2,000 objects and
slowed it from round to round. ``install`` tracks them weakly instead: ``reset`` still reaches
every live one, and one that nothing else holds is disposed of and freed. (moto's own reset of
its model data would put plain lists back; the emulator never calls it.)
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from moto.s3.models import FakeAcl, FakeGrant, FakeGrantee, FakeKey, FakeMultipart


class WeakTracked:
    """moto's ``instances_tracked`` list, holding its objects weakly: ``append`` (what moto's
    models call) and iteration (what its ``reset`` does) over the live ones. Keyed by ``id``:
    moto's grantees compare by value and cannot be hashed."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._live: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        for item in items:
            self.append(item)

    def append(self, item: Any) -> None:
        self._live[id(item)] = item

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._live.values()))

    def __len__(self) -> int:
        return len(self._live)


def _dispose_quietly(self: FakeKey) -> None:
    """``FakeKey.__del__`` without moto's "not disposed of in time" warning: a key collected
    here was deleted or replaced, which moto never disposes of."""
    self.dispose()


def install() -> None:
    """Track moto's keys, multipart uploads and their ACLs weakly (idempotent; process-wide,
    as moto's backends are)."""
    for model in (FakeKey, FakeMultipart, FakeAcl, FakeGrant, FakeGrantee):
        if not isinstance(model.instances_tracked, WeakTracked):  # type: ignore[attr-defined]
            model.instances_tracked = WeakTracked(model.instances_tracked)  # type: ignore[attr-defined]
    FakeKey.__del__ = _dispose_quietly  # type: ignore[method-assign]
