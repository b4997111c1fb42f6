"""Small, valid media for the multimodal content parts (004): a PNG, a WAV, a PDF and an MP4.

Each is tiny (a few hundred bytes to a few kilobytes) and sent inline (base64 or a data URL), so
a multimodal check costs little and makes the target fetch nothing from the network. All but the
video are built here from their formats' rules; the video is a constant (encoding H.264 by hand
is not worth it): one 16x16 grey frame lasting one second, H.264 Constrained Baseline in an MP4,
made with PyAV 18.1 (libx264, ``filter_units=remove_types=6`` dropping x264's SEI) and checked to
decode to that one frame.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
import zlib

PNG_SIDE = 8
"""The test image's width and height in pixels."""

WAV_RATE = 8_000
WAV_SECONDS = 0.25

TINY_MP4 = base64.b64decode(
    "AAAAIGZ0eXBpc29tAAACAGlzb21pc28yYXZjMW1wNDEAAAL9bW9vdgAAAGxtdmhkAAAAAAAAAAAAAAAAAAAD6AAAA+gAAQAA"
    "AQAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAgAAAid0cmFrAAAAXHRraGQAAAADAAAAAAAAAAAAAAABAAAAAAAAA+gAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAA"
    "AAAAAAABAAAAAAAAAAAAAAAAAABAAAAAABAAAAAQAAAAAAAkZWR0cwAAABxlbHN0AAAAAAAAAAEAAAPoAAAAAAABAAAAAAGf"
    "bWRpYQAAACBtZGhkAAAAAAAAAAAAAAAAAABAAAAAQABVxAAAAAAALWhkbHIAAAAAAAAAAHZpZGUAAAAAAAAAAAAAAABWaWRl"
    "b0hhbmRsZXIAAAABSm1pbmYAAAAUdm1oZAAAAAEAAAAAAAAAAAAAACRkaW5mAAAAHGRyZWYAAAAAAAAAAQAAAAx1cmwgAAAA"
    "AQAAAQpzdGJsAAAApnN0c2QAAAAAAAAAAQAAAJZhdmMxAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAABAAEABIAAAASAAAAAAA"
    "AAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAGP//AAAALGF2Y0MBQsAK/+EAFGdCwAraehAAAAMAEAAAAwAg"
    "8SJqAQAFaM4DnIAAAAAUYnRydAAAAAAAAABQAAAAAAAAABhzdHRzAAAAAAAAAAEAAAABAABAAAAAABxzdHNjAAAAAAAAAAEA"
    "AAABAAAAAQAAAAEAAAAUc3RzegAAAAAAAAAKAAAAAQAAABRzdGNvAAAAAAAAAAEAAAMtAAAAYnVkdGEAAABabWV0YQAAAAAA"
    "AAAhaGRscgAAAAAAAAAAbWRpcmFwcGwAAAAAAAAAAAAAAAAtaWxzdAAAACWpdG9vAAAAHWRhdGEAAAABAAAAAExhdmY2Mi4x"
    "Mi4xMDIAAAAIZnJlZQAAABJtZGF0AAAABmWIhDongA=="
)
"""One second of a 16x16 grey frame: H.264 in MP4 (823 bytes, sha256 cc35fdc4...)."""


def png_image(side: int = PNG_SIDE) -> bytes:
    """A ``side`` x ``side`` RGB PNG: a red-to-blue gradient (not one colour, so it is a picture)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((255 * x // side, 64, 255 * y // side)) for x in range(side))
        for y in range(side)
    )
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def wav_audio(seconds: float = WAV_SECONDS, rate: int = WAV_RATE) -> bytes:
    """A mono 16-bit PCM WAV of a 440 Hz tone (a quarter of a second: 4 kB)."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return out.getvalue()


def pdf_document(text: str = "gatecheck") -> bytes:
    """A one-page PDF 1.4 showing ``text`` (ASCII letters only), its xref offsets computed."""
    stream = f"BT /F1 24 Tf 20 40 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%b\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def data_url(mime: str, data: bytes) -> str:
    """``data:<mime>;base64,<data>`` (RFC 2397)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode()
