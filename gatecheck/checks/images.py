"""Is this a real image? Magic numbers for PNG, JPEG, WebP and GIF, and PNG's chunk structure.

A gateway that returns a URL or base64 for a generated image must return an image, not an error
page or random bytes. For PNG the whole file is walked: signature, IHDR first with a sane size,
every chunk's CRC-32, at least one IDAT, IEND last with nothing after it.
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
