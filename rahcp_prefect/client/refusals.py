"""What a namespace's refusal to delete or overwrite an object means, as an error naming it.

HCP answers 403 to a delete or an overwrite of an object under retention or on hold, and a bulk
delete lists such keys as ``AccessDenied``: a ``RetentionError`` naming the objects, never a
login problem (``AuthenticationError``).
"""

from __future__ import annotations

from typing import Any

from .errors import HCPError, RetentionError


def refused(exc: HCPError, bucket: str, key: str, what: str) -> HCPError:
    """A 403 on a delete or an overwrite (``what``: ``deleted``, ``overwritten``): the object's
    retention or hold, not the login; any other error as it is."""
    if exc.status_code != 403:
        return exc
    return RetentionError(
        f"{bucket}/{key} cannot be {what}: it is under retention or on hold (or the user may not "
        f"delete objects there); {exc.message}",
        403,
    )


def raise_on_delete_errors(result: dict[str, Any], bucket: str) -> None:
    """Raise for the keys a bulk delete (``delete_bulk``'s answer) did not delete:
    ``RetentionError`` naming them when every one was refused as retained or held
    (AccessDenied), else ``HCPError`` naming the first."""
    errors = result.get("errors") or []
    if not errors:
        return
    keys = [str(e.get("Key")) for e in errors]
    if all(e.get("Code") == "AccessDenied" for e in errors):
        shown = ", ".join(f"{bucket}/{key}" for key in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise RetentionError(f"{shown} cannot be deleted: under retention or on hold (AccessDenied)", 403)
    first = errors[0]
    raise HCPError(
        f"{len(errors)} object(s) of {bucket} could not be deleted, e.g. {first.get('Key')!r}: {first.get('Code')}"
    )
