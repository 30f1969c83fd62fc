"""Writes the fuzz targets' seed inputs: small valid files and requests of every kind each
target reads, for the fuzzer to mutate. `cargo xtask fuzz` runs it.

Usage: seeds.py DIR (one subdirectory per target). Standard library only, except the FLAC, Ogg
Vorbis and MP3 clips, written with the soundfile package when it is installed (`cargo xtask test`
installs it).
"""

import io
import json
import math
import struct
import sys
import wave
import zlib
from pathlib import Path

BOUNDARY = "rbee-fuzz"  # rbee_host::server::untrusted::BOUNDARY


def tone(rate, seconds):
    """A 440 Hz tone, as floats in -0.5..0.5."""
    return [0.5 * math.sin(2 * math.pi * 440 * i / rate) for i in range(int(rate * seconds))]


def wav(rate, channels, seconds):
    """A 16-bit PCM wav file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(struct.pack("<h", int(s * 32767)) * channels for s in tone(rate, seconds))
        w.writeframes(frames)
    return out.getvalue()


def float_wav(rate, seconds):
    """A 32-bit float mono wav file (WAVE_FORMAT_IEEE_FLOAT), as the speech clips are."""
    data = b"".join(struct.pack("<f", s) for s in tone(rate, seconds))
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def encoded(fmt, subtype, rate, seconds):
    """A clip in a compressed format, or None without soundfile."""
    try:
        import numpy
        import soundfile
    except ImportError:
        return None
    out = io.BytesIO()
    soundfile.write(out, numpy.array(tone(rate, seconds)), rate, format=fmt, subtype=subtype)
    return out.getvalue()


def chunk(kind, data):
    """A PNG chunk."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, color_type, rows, bit_depth=8, extra=b""):
    """A PNG file; `rows` are the raw scanlines (without filter bytes)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\0" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


RGBA = png(2, 2, 6, [bytes([9, 9, 9, 255, 9, 9, 9, 0])] * 2)
GRAY_ALPHA = png(2, 2, 4, [bytes([0, 0, 255, 255])] * 2)
RGB = png(2, 2, 2, [bytes(6)] * 2)
PALETTE = png(2, 1, 3, [bytes([0, 1])], extra=chunk(b"PLTE", bytes(6)) + chunk(b"tRNS", b"\0"))
RGBA16 = png(1, 1, 6, [bytes([1, 2, 3, 4, 5, 6, 0, 0])], bit_depth=16)


def form(fields):
    """A multipart/form-data body: `fields` are (name, value) or (name, filename, bytes)."""
    parts = []
    for field in fields:
        if len(field) == 2:
            name, value = field
            head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
            body = value.encode()
        else:
            name, filename, body = field
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
        parts.append(f"--{BOUNDARY}\r\n{head}".encode() + body + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def gguf():
    """A GGUF v3 file: metadata of every value type the llm plugin reads, one f32 tensor."""

    def text(s):
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    def kv(key, kind, value):
        return text(key) + struct.pack("<I", kind) + value

    metadata = [
        kv("general.architecture", 8, text("llama")),
        kv("llama.context_length", 4, struct.pack("<I", 2048)),
        kv("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
        kv("general.quantized", 7, b"\1"),
        kv("tokenizer.ggml.model", 8, text("gpt2")),
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + text("a") + text("b")),
        kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 2) + struct.pack("<ii", 1, 3)),
    ]
    tensor = text("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 2, 2)
    tensor += struct.pack("<IQ", 0, 0)  # f32, offset 0
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata)) + b"".join(metadata) + tensor
    head += bytes(-len(head) % 32)
    return head + struct.pack("<4f", 1, 2, 3, 4)


def seeds():
    """Every target's seeds: {target: {name: bytes}}."""
    clips = {
        "mono-8k.wav": wav(8000, 1, 0.05),
        "stereo-22k.wav": wav(22050, 2, 0.02),
        "float-16k.wav": float_wav(16000, 0.03),
        "mono.flac": encoded("FLAC", "PCM_16", 8000, 0.05),
        "mono.ogg": encoded("OGG", "VORBIS", 8000, 0.1),
        "mono.mp3": encoded("MP3", "MPEG_LAYER_III", 8000, 0.1),
    }
    audio = {name: clip for name, clip in clips.items() if clip is not None}
    multipart = {
        "transcription": form([
            ("file", "a.wav", clips["mono-8k.wav"][:200]),
            ("model", "whisper-1"),
            ("language", "en"),
            ("prompt", "Hello."),
            ("temperature", "0.2"),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "segment"),
            ("stream", "false"),
        ]),
        "edit": form([
            ("image", "a.png", RGBA),
            ("mask", "m.png", GRAY_ALPHA),
            ("prompt", "a cat"),
            ("n", "1"),
            ("size", "64x64"),
            ("response_format", "b64_json"),
            ("strength", "0.5"),
            ("steps", "2"),
            ("output_compression", "100"),
        ]),
        "edit-list": form([("image[]", "a.png", RGB), ("prompt", "x"), ("image[]", "b.png", RGB)]),
    }
    png_inputs = {
        "rgba": struct.pack("<H", len(RGBA)) + RGBA,
        "rgba-mask": struct.pack("<H", len(RGBA)) + RGBA + GRAY_ALPHA,
        "palette-trns": struct.pack("<H", len(PALETTE)) + PALETTE,
        "rgb-16bit-mask": struct.pack("<H", len(RGB)) + RGB + RGBA16,
    }
    bodies = {
        "chat": {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "temperature": 0.5,
            "max_tokens": 9,
            "stop": ["\n"],
            "stream": True,
            "stream_options": {"include_usage": True},
            "n": 1,
            "logit_bias": {},
        },
        "completion": {"prompt": "once", "top_k": 3, "seed": 7, "stop": "x", "echo": False},
        "embeddings": {"input": ["a", "b"], "encoding_format": "base64", "user": "u"},
        "images": {"prompt": "a cat", "size": "512x512", "n": 2, "steps": 4, "response_format": "b64_json"},
        "job": {"task": "inpainting", "params": {"prompt": "p", "init_image": "data:image/png;base64,iVBORw0KGgo=", "mask_image": "AAAA"}},
        "params": {"prompt": "p", "max_tokens": 3, "temperature": 0.1, "stop": ["a"], "seed": 1,
                   "messages": [{"role": "user", "content": "hi"}]},
    }
    return {
        "multipart": multipart,
        "png": png_inputs,
        "json": {name: json.dumps(body).encode() for name, body in bodies.items()},
        "audio": audio,
        "gguf": {"llama": gguf()},
    }


def main():
    root = Path(sys.argv[1])
    for target, inputs in seeds().items():
        directory = root / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in inputs.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
