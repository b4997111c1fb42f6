"""Is this a real image, and how big? Magic numbers for PNG, JPEG, WebP and GIF, PNG's chunk structure.

A gateway that returns a URL or base64 for a generated image must return an image, not an error
page or random bytes. For PNG the whole file is walked: signature, IHDR first with a sane size,
every chunk's CRC-32, at least one IDAT, IEND last with nothing after it. The width and height
come from each format's header (PNG IHDR, JPEG start-of-frame, WebP VP8/VP8L/VP8X, GIF screen).
"""

from __future__ import annotations

import struct
import zlib

from gatecheck.quote import excerpt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def image_kind(data: bytes) -> str | None:
    """The image format the magic number says, or None."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def image_problem(data: bytes) -> str:
    """Why ``data`` is not a well-formed image ("" when it is one)."""
    kind = image_kind(data)
    if kind is None:
        return f"no PNG, JPEG, WebP or GIF signature (starts {excerpt(data, 16)})"
    if kind == "png":
        return png_problem(data)
    if kind == "jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG without its end-of-image marker FF D9"
    if kind == "webp" and struct.unpack("<I", data[4:8])[0] + 8 != len(data):
        return "WebP whose RIFF size does not match the data"
    if kind == "gif" and not data.endswith(b"\x3b"):
        return "GIF without its trailer byte 0x3B"
    return ""


def png_problem(data: bytes) -> str:
    """Why ``data`` is not a structurally valid PNG ("" when it is)."""
    pos = len(PNG_SIGNATURE)
    seen: list[bytes] = []
    while pos < len(data):
        if pos + 8 > len(data):
            return f"truncated chunk header at byte {pos}"
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            return f"chunk {excerpt(kind)} at byte {pos} runs past the end of the data"
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            return f"chunk {excerpt(kind)} at byte {pos} has a wrong CRC"
        if not seen and kind != b"IHDR":
            return f"the first chunk is {excerpt(kind)}, not IHDR"
        if kind == b"IHDR":
            problem = _ihdr_problem(body)
            if problem:
                return problem
        seen.append(kind)
        pos = end
        if kind == b"IEND":
            break
    if not seen or seen[-1] != b"IEND":
        return "no IEND chunk at the end"
    if pos != len(data):
        return f"{len(data) - pos} bytes after IEND"
    if b"IDAT" not in seen:
        return "no IDAT chunk (no image data)"
    return ""


def _ihdr_problem(body: bytes) -> str:
    if len(body) != 13:
        return f"IHDR is {len(body)} bytes, not 13"
    width, height, depth, colour = struct.unpack(">IIBB", body[:10])
    if width == 0 or height == 0:
        return f"IHDR size {width}x{height}"
    if depth not in _PNG_BIT_DEPTHS.get(colour, ()):
        return f"IHDR bit depth {depth} is invalid for colour type {colour}"
    return ""


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG start-of-frame markers (SOF0..SOF15 but DHT, JPG and DAC), which carry the frame's size."""


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the image's header (PNG, JPEG, WebP, GIF); None when unreadable."""
    kind = image_kind(data)
    if kind == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if kind == "gif" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if kind == "jpeg":
        return _jpeg_dimensions(data)
    if kind == "webp":
        return _webp_dimensions(data)
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments to the first start-of-frame."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers: no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    """The size from a WebP's first chunk: VP8 (lossy), VP8L (lossless) or VP8X (extended)."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF), int(height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        (bits,) = struct.unpack("<I", data[21:25])
        return int((bits & 0x3FFF) + 1), int(((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None
