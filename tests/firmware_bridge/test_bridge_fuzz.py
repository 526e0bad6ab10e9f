"""Fuzzing the decoder with 100,000+ frames: good, bit-flipped, truncated, garbage, oversize.

No exception may escape, every bad frame must be counted exactly once, and every good frame after a
bad one must come through (the decoder resynchronises at the next 0x00).
"""

from __future__ import annotations

import struct
import time

import numpy as np
from cobs import cobs

from firmware_bridge.errors import BridgeError
from firmware_bridge.framing import MAX_ENCODED, Frame, Packetizer, crc32, decode_frame, encode_frame
from firmware_bridge.messages import parse

N_FRAMES = 100_000
GOOD, FLIP, TRUNCATE, GARBAGE, BAD_LENGTH, OVERSIZE_RUN = range(6)
KIND_P = [0.5, 0.15, 0.12, 0.12, 0.06, 0.05]


def _build_stream(seed: int) -> tuple[bytes, list[tuple[int, bytes]], np.ndarray]:
    """The wire bytes of N_FRAMES frames of random kinds, the good (seq, payload) in order, kind counts."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(6, size=N_FRAMES, p=KIND_P)
    lengths = rng.integers(0, 64, size=N_FRAMES)
    pool = rng.integers(0, 256, size=int(lengths.sum()) + 64, dtype=np.uint8).tobytes()
    noise = rng.integers(1, 256, size=MAX_ENCODED + 300, dtype=np.uint8).tobytes()  # never 0x00
    positions = rng.random(N_FRAMES)
    bits = rng.integers(0, 8, size=N_FRAMES)
    garbage_len = rng.integers(1, 40, size=N_FRAMES)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    parts: list[bytes] = []
    good: list[tuple[int, bytes]] = []
    for i in range(N_FRAMES):
        kind = int(kinds[i])
        payload = pool[offsets[i] : offsets[i] + lengths[i]]
        seq = i & 0xFFFF
        if kind == GOOD:
            parts.append(encode_frame(0x30, payload, seq=seq))
            good.append((seq, payload))
        elif kind == FLIP:
            flipped = bytearray(encode_frame(0x30, payload, seq=seq))
            at = int(positions[i] * (len(flipped) - 1))
            bit = 1 << int(bits[i])
            if flipped[at] == bit:  # flipping would create a 0x00, i.e. two frames: flip another bit
                bit = 1 if bit != 1 else 2
            flipped[at] ^= bit
            parts.append(bytes(flipped))
        elif kind == TRUNCATE:
            wire = encode_frame(0x30, payload, seq=seq)
            parts.append(wire[: 1 + int(positions[i] * (len(wire) - 2))] + b"\x00")
        elif kind == GARBAGE:
            start = int(positions[i] * 200)
            parts.append(noise[start : start + int(garbage_len[i])] + b"\x00")
        elif kind == BAD_LENGTH:  # valid CRC, length field far beyond the maximum
            body = struct.pack("<BBBBHH", 1, 0, 0x30, 0, seq, 0xFFFF) + payload
            parts.append(encode_frame_raw(body + struct.pack("<I", crc32(body))))
        else:  # a run longer than any frame with no delimiter in it
            parts.append(noise[: MAX_ENCODED + 1 + int(garbage_len[i])] + b"\x00")
    return b"".join(parts), good, np.bincount(kinds, minlength=6)


def encode_frame_raw(raw: bytes) -> bytes:
    return bytes(cobs.encode(raw)) + b"\x00"


def _feed_in_chunks(stream: bytes, packetizer: Packetizer, seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, 8192, size=len(stream) // 2000 + 2))
    frames: list[Frame] = []
    start = 0
    for end in cuts:
        frames.extend(packetizer.feed(stream[start : int(end)]))
        start = int(end)
        if start >= len(stream):
            break
    frames.extend(packetizer.feed(stream[start:]))
    return frames


def test_fuzz_100k_frames_every_bad_frame_counted_and_resynced() -> None:
    t0 = time.perf_counter()
    stream, good, counts = _build_stream(seed=20240611)
    packetizer = Packetizer()
    frames = _feed_in_chunks(stream, packetizer, seed=5)
    elapsed = time.perf_counter() - t0
    stats = packetizer.stats()
    assert sum(counts) == N_FRAMES
    assert [(f.header.seq, f.payload) for f in frames] == good  # every good frame, in order
    assert stats.frames_ok == counts[GOOD]
    assert stats.crc_errors + stats.malformed == counts[FLIP] + counts[TRUNCATE] + counts[GARBAGE]
    assert stats.oversize == counts[BAD_LENGTH] + counts[OVERSIZE_RUN]
    assert stats.bad_frames == N_FRAMES - counts[GOOD] == stats.resyncs
    assert stats.crc_errors > 0 and stats.malformed > 0
    assert stats.bytes_in == len(stream)
    print(f"fuzz: {N_FRAMES} frames, {len(stream)} bytes, {stats}, {elapsed:.2f} s")


def test_fuzz_random_bytes_never_raise_and_every_segment_is_accounted() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, size=400_000, dtype=np.uint8)
    data[rng.random(data.size) < 0.01] = 0  # ~1 % delimiters: segments of ~100 bytes
    stream = data.tobytes()
    packetizer = Packetizer()
    frames = _feed_in_chunks(stream, packetizer, seed=9)
    segments = [s for s in stream.split(b"\x00")[:-1] if s]
    stats = packetizer.stats()
    assert stats.frames_ok == len(frames)
    assert stats.frames_ok + stats.bad_frames == len(segments)


def test_fuzz_parse_valid_frames_with_random_types_and_payloads() -> None:
    rng = np.random.default_rng(11)
    types = rng.integers(0, 256, size=20_000)
    majors = rng.choice([1, 1, 1, 2], size=20_000)
    lengths = rng.integers(0, 40, size=20_000)
    pool = rng.integers(0, 256, size=int(lengths.sum()), dtype=np.uint8).tobytes()
    start = 0
    outcomes = {"ok": 0, "refused": 0}
    for t, major, n in zip(types, majors, lengths, strict=True):
        payload = pool[start : start + int(n)]
        start += int(n)
        frame = decode_frame(encode_frame(int(t), payload, seq=0, version=(int(major), 0))[:-1])
        try:
            parse(frame)
            outcomes["ok"] += 1
        except BridgeError:  # unknown type, short payload or foreign major: all expected, all typed
            outcomes["refused"] += 1
    assert outcomes["ok"] > 0 and outcomes["refused"] > 0
    assert sum(outcomes.values()) == 20_000
