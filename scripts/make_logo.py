"""Draw the blocks' logo (rahcp_prefect/assets/logo.png): three storage platters on a blue
rounded square, 256 x 256 RGBA, written as a PNG with the standard library only.

    python scripts/make_logo.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIZE = 256
BLUE = (18, 52, 110, 255)
LIGHT = (235, 242, 255, 255)
GREEN = (46, 160, 90, 255)
CLEAR = (0, 0, 0, 0)
OUT = Path(__file__).resolve().parent.parent / "rahcp_prefect" / "assets" / "logo.png"


def in_rounded(x: int, y: int, box: tuple[int, int, int, int], radius: int) -> bool:
    """Whether pixel (x, y) lies in the rectangle ``box`` with corners rounded by ``radius``."""
    left, top, right, bottom = box
    if not (left <= x <= right and top <= y <= bottom):
        return False
    cx = min(max(x, left + radius), right - radius)
    cy = min(max(y, top + radius), bottom - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    if not in_rounded(x, y, (0, 0, SIZE - 1, SIZE - 1), 40):
        return CLEAR
    for top in (58, 110, 162):
        if in_rounded(x, y, (48, top, 207, top + 38), 14):
            return GREEN if (x - 186) ** 2 + (y - top - 19) ** 2 <= 49 else LIGHT
    return BLUE


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 per row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main() -> None:
    rows = [b"".join(bytes(pixel(x, y)) for x in range(SIZE)) for y in range(SIZE)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(png(SIZE, SIZE, rows))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
