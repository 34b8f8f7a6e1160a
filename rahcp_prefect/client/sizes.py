"""Sizes for people: ``"64 MiB"``, ``"1.5 GB"`` or a byte count in, binary units out.

One parser for every size setting (SDK config, engine configs, the transfer settings block), so
a form, an environment variable and a ``settings_overrides`` dict all accept the same text, and
one formatter for every byte count a person reads (artifacts, logs). Prefect-free.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from rahcp_prefect.errors import RahcpError

KIB = 1024
MIB = KIB * 1024
GIB = MIB * 1024
TIB = GIB * 1024

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": KIB,
    "kib": KIB,
    "mi": MIB,
    "mib": MIB,
    "gi": GIB,
    "gib": GIB,
    "ti": TIB,
    "tib": TIB,
}
_SIZE = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")
_BINARY = (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB))

SIZE_HELP = 'a byte count or a size with a unit, e.g. 67108864, "64 MiB", "1.5 GB"'
"""How a size may be written, for field descriptions and error messages."""


class SizeError(RahcpError, ValueError):
    """A size that is neither a byte count nor a number with a known unit."""


def parse_size(value: Any, name: str = "size") -> int:
    """Bytes from ``value``: an int, or text like ``"64 MiB"``, ``"1.5GB"``, ``"4096"``.

    Units: B, KB/MB/GB/TB (powers of 1000) and KiB/MiB/GiB/TiB (powers of 1024), any case.
    Fractions must come to a whole number of bytes. ``name`` says which setting was wrong.
    """
    if isinstance(value, bool):
        raise SizeError(f"{name} must be {SIZE_HELP}, not a boolean")
    if isinstance(value, int):
        return _non_negative(value, name, value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise SizeError(f"{name} must be a whole number of bytes, got {value!r}")
        return _non_negative(int(value), name, value)
    if not isinstance(value, str):
        raise SizeError(f"{name} must be {SIZE_HELP}, got {type(value).__name__}")
    match = _SIZE.match(value)
    if match is None and value.strip().startswith("-"):
        raise SizeError(f"{name} must not be negative, got {value.strip()[:40]!r}")
    if match is None:
        raise SizeError(f"{name} must be {SIZE_HELP}, got {value.strip()[:40]!r}")
    number, unit = match.group(1).replace("_", "").replace(",", ""), match.group(2).lower()
    if unit not in _UNITS:
        raise SizeError(
            f"{name}: unknown unit {match.group(2)!r} in {value.strip()[:40]!r} "
            "(use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)"
        )
    scaled = float(number) * _UNITS[unit] if "." in number else int(number) * _UNITS[unit]
    if isinstance(scaled, float):
        if not scaled.is_integer():
            raise SizeError(f"{name}: {value.strip()!r} is not a whole number of bytes")
        scaled = int(scaled)
    return scaled


def _non_negative(size: int, name: str, shown: Any) -> int:
    if size < 0:
        raise SizeError(f"{name} must not be negative, got {shown!r}")
    return size


def _validate(value: Any) -> int:
    return parse_size(value, "size")


ByteSize = Annotated[int, BeforeValidator(_validate)]
"""A pydantic field type: an ``int`` of bytes that also accepts ``"64 MiB"`` style text."""


def format_bytes(count: int | float) -> str:
    """``74207280`` -> ``"70.8 MiB"``; below 1 KiB the exact count (``"512 B"``)."""
    count = float(count)
    sign = "-" if count < 0 else ""
    count = abs(count)
    for unit, scale in _BINARY:
        if count >= scale:
            value = count / scale
            text = f"{value:.1f}" if value < 100 else f"{value:,.0f}"
            return f"{sign}{text} {unit}"
    return f"{sign}{int(count)} B"


def exact_size_text(count: int) -> str:
    """``67108864`` -> ``"64 MiB"``: the largest binary unit that divides ``count`` exactly, so
    the text parses back to the same byte count (``"1000001 B"`` when none does)."""
    for unit, scale in _BINARY:
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} B"


FormSize = Annotated[
    int,
    BeforeValidator(_validate),
    PlainSerializer(exact_size_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["64 MiB", "1.5 GB", "67108864"]}),
]
"""A size field of a form (a Prefect block): an ``int`` of bytes in Python, shown and stored as
``"64 MiB"`` text so a person reads and types units; a byte count is accepted too."""


def size_field(default: int, *, title: str, description: str, minimum: int = 0) -> Any:
    """A pydantic ``Field`` for a ``FormSize``: the unit in its title and description, its
    default shown as text (``"64 MiB"``), its minimum checked by ``check_minimum_size``."""
    from pydantic import Field

    least = f", at least {exact_size_text(minimum)}" if minimum else ""
    return Field(
        default=default,
        title=f"{title} (bytes or with unit)",
        description=f'{description}{least}: a byte count, or a size such as "64 MiB" or "1.5 GB".',
        json_schema_extra={"default": exact_size_text(default), "minimum_bytes": minimum},
    )


def check_minimum_size(model: Any, name: str, value: int) -> int:
    """``value`` of ``size_field`` ``name`` of ``model`` (a pydantic model class), or
    ``SizeError`` when it is below the field's minimum (for a ``field_validator``)."""
    extra = model.model_fields[name].json_schema_extra
    minimum = extra.get("minimum_bytes") if isinstance(extra, dict) else None
    if isinstance(minimum, int) and value < minimum:
        shown = format_bytes(value) + (f" ({value} bytes)" if value >= KIB else "")
        raise SizeError(f"must be at least {exact_size_text(minimum)} ({minimum} bytes), got {shown}")
    return value
