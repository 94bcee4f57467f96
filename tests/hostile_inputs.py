"""The hostile inputs every layer is tested with (tests/test_bad_input.py, the HTTP tests, tests/robustness.py)."""

import io

import numpy as np

rng = np.random.default_rng(7)
GOOD_TEXT = "I am furious with you"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels (a decompression bomb is refused from this alone)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


def flac_of_silence(minutes: int, rate: int = 8000) -> bytes:
    """A small FLAC file (about 1.5 kB a minute) that decodes to ``minutes`` of silence."""
    import soundfile as sf

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros(rate * 60, np.int16)
        for _ in range(minutes):
            f.write(block)
    return buf.getvalue()

BAD_IMAGES = {
    "blank": np.zeros((480, 640, 3), np.uint8),
    "white": np.full((480, 640, 3), 255, np.uint8),
    "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
    "tiny": np.zeros((3, 3, 3), np.uint8),
    "one pixel": np.zeros((1, 1), np.uint8),
    "huge": np.full((5000, 5000, 3), 60, np.uint8),
    "nan": np.full((64, 64, 3), np.nan),
    "inf": np.full((64, 64), np.inf),
    "wrong shape": np.zeros((2, 2, 2, 2)),
    "five channels": np.zeros((20, 20, 5), np.uint8),
    "zero size": np.zeros((0, 10, 3), np.uint8),
    "complex": np.zeros((8, 8), np.complex64),
    "strings": np.array([["x", "y"]]),
    "corrupt png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    "random bytes": bytes(rng.integers(0, 256, 5000, dtype=np.uint8)),
    "missing path": "/definitely/not/here.jpg",
    "a number": 3.14,
    "a list": [[1, 2], [3, 4]],
    "empty bytes": b"",
    "PNG header of 30,000×30,000": png_header_only(30_000, 30_000),
    "float32 20,000×20,000 array": np.broadcast_to(np.float32(0.5), (20_000, 20_000)),  # a view: no memory
}
BAD_AUDIO = {
    "silence": (16000, np.zeros(48000, np.int16)),
    "tone": (44100, (0.5 * np.sin(np.arange(44100 * 2) * 0.06)).astype(np.float32)),
    "white noise": (16000, rng.standard_normal(32000).astype(np.float32) * 0.2),
    "clipped square": (16000, np.sign(np.sin(np.arange(32000) * 0.05)).astype(np.float32)),
    "0.05 s": (16000, rng.standard_normal(800).astype(np.float32)),
    "10 minutes of silence": (8000, np.zeros(8000 * 600, np.int16)),
    "nan": (16000, np.full(16000, np.nan, np.float32)),
    "inf": (16000, np.full(16000, np.inf, np.float32)),
    "no sample rate": np.zeros(16000, np.float32),
    "rate 3 Hz": (3, np.zeros(100, np.float32)),
    "rate 10 MHz": (10_000_000, np.zeros(100, np.float32)),
    "3-d array": (16000, np.zeros((10, 10, 10), np.float32)),
    "empty": (16000, np.zeros(0, np.float32)),
    "strings": (16000, np.array(["a", "b"])),
    "corrupt wav": b"RIFF\x00\x00\x00\x00WAVEfmt garbage",
    "missing path": "/nope/voice.wav",
    "dict without rate": {"raw": np.zeros(100)},
    "a number": 42,
    "rate NaN": (float("nan"), np.zeros(16000, np.float32)),
    "rate inf": (float("inf"), np.zeros(16000, np.float32)),
    "rate 'abc'": ("abc", np.zeros(16000, np.float32)),
    "planar (9, n)": (16000, np.zeros((9, 48000), np.float32)),
    "3 h int16 array": (16000, np.broadcast_to(np.int16(0), (16000 * 3600 * 3,))),  # a view: no memory
    "61 min FLAC (90 kB)": flac_of_silence(61),
}
BAD_TEXT = {
    "empty": "", "spaces": "    ", "newlines": "\n\n\t", "punctuation": "?!...", "50,000 characters": "meh " * 12_500,
    "binary": bytes(range(256)) * 10, "invalid utf-8": b"\xff\xfe\xfa" * 100, "a number": 12345,
    "a list": ["happy"], "control chars": "\x00\x01\x02\x03" * 50, "non-English": "Estoy muy cansado y triste hoy",
    "zero-width only": "\u200b\u200b\u200b",
    "lone surrogate": "I am furious \ud800", "150,000 characters after 'although'": "although " + "a" * 150_000,
}


def flac_bomb(minutes: int = 10, channels: int = 8, rate: int = 96_000) -> bytes:
    """A FLAC of silence that is small on the wire (about 0.5 MB for the defaults) and huge decoded (8 channels ×
    96 kHz × 10 min: 461 M samples, 1.8 GB as float32)."""
    import soundfile as sf

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((rate * 10, channels), np.int16)
        for _ in range(minutes * 6):
            f.write(block)
    return buf.getvalue()
