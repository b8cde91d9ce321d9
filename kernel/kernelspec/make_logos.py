"""Draws the Kiln logo (a kiln's arch with a flame) as logo-svg.svg and, with a small
supersampling rasteriser, as logo-32x32.png and logo-64x64.png. Run it again after
changing the shapes; the outputs are committed, so a build never needs it."""
import math
import struct
import sys
import zlib
from pathlib import Path

SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
  <rect x="2" y="2" width="60" height="60" rx="10" fill="#2b2118"/>
  <path d="M14 56 V34 A18 18 0 0 1 50 34 V56 Z" fill="#c2410c"/>
  <path d="M32 18 C38 28 43 34 43 42 A11 11 0 0 1 21 42 C21 34 26 28 32 18 Z" fill="#fbbf24"/>
</svg>
"""

BG, ARCH, FLAME = (0x2B, 0x21, 0x18), (0xC2, 0x41, 0x0C), (0xFB, 0xBF, 0x24)


def colour_at(x, y):
    """The colour at (x, y) in the 64x64 design space, or None outside the logo."""
    if not (2 <= x <= 62 and 2 <= y <= 62):
        return None
    cx, cy = min(max(x, 12), 52), min(max(y, 12), 52)  # rounded corners, radius 10
    if math.hypot(x - cx, y - cy) > 10:
        return None
    in_flame = math.hypot(x - 32, y - 42) <= 11 or (
        18 <= y <= 42 and abs(x - 32) <= 11 * ((y - 18) / 24) ** 0.8)
    if in_flame:
        return FLAME
    if 14 <= x <= 50 and ((34 <= y <= 56) or (y < 34 and math.hypot(x - 32, y - 34) <= 18)):
        return ARCH
    return BG


def png(size, ss=4):
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc, hits = [0, 0, 0], 0
            for sy in range(ss):
                for sx in range(ss):
                    c = colour_at((px + (sx + 0.5) / ss) * 64 / size, (py + (sy + 0.5) / ss) * 64 / size)
                    if c:
                        hits += 1
                        acc = [a + b for a, b in zip(acc, c)]
            if hits:
                row += bytes([a // hits for a in acc]) + bytes([255 * hits // (ss * ss)])
            else:
                row += bytes(4)
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def main():
    here = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    (here / "logo-svg.svg").write_text(SVG)
    for size in (32, 64):
        (here / f"logo-{size}x{size}.png").write_bytes(png(size))


if __name__ == "__main__":
    main()
