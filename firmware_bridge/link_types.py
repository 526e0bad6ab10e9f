"""Values shared by the link and its users: configuration, counters, received-message envelopes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from firmware_bridge.errors import LinkConfigError
from firmware_bridge.framing import FrameHeader
from firmware_bridge.messages import Message

__all__ = ["LinkConfig", "LinkCounters", "Received", "is_positive_time"]


def is_positive_time(value: object) -> bool:
    """A time in seconds the link can wait for: a finite int or float above 0 (not a bool; inf would
    overflow ``Event.wait``)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Timing of one link. Defaults suit a USB-CDC controller board at 30 fps."""

    baudrate: int = 921_600
    heartbeat_s: float = 0.5  # HEARTBEAT period; also how often the supervisor checks the link
    link_timeout_s: float = 2.0  # no byte received for this long → link lost
    backoff_initial_s: float = 0.05  # first reconnect delay; doubles on every failed attempt
    backoff_max_s: float = 2.0
    read_poll_s: float = 0.1  # reader wake-up period for ports without cancel_read()
    write_timeout_s: float = 1.0  # a write blocked this long → link lost

    def __post_init__(self) -> None:
        positive = ("heartbeat_s", "link_timeout_s", "backoff_initial_s", "backoff_max_s", "read_poll_s",
                    "write_timeout_s")
        for name in positive:
            value = getattr(self, name)
            if not is_positive_time(value):
                raise LinkConfigError(f"LinkConfig.{name} must be a finite number > 0, got {value!r}")
        if isinstance(self.baudrate, bool) or not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise LinkConfigError(f"LinkConfig.baudrate must be a positive integer, got {self.baudrate!r}")


@dataclass(frozen=True, slots=True)
class LinkCounters:
    """A snapshot of one link's counters (all monotonic since the link was created)."""

    frames_ok: int = 0  # frames that passed COBS, CRC and length checks
    crc_errors: int = 0
    malformed: int = 0  # bad COBS, too short, or length field != payload
    oversize: int = 0  # longer than the protocol maximum
    resyncs: int = 0  # times bytes were discarded up to the next 0x00 delimiter
    seq_gaps: int = 0  # jumps in the device's sequence numbers (each one loses frames_lost frames in all)
    frames_lost: int = 0  # sequence numbers missing from the device's stream (frames lost on the wire)
    links_lost: int = 0  # times the link went down (unplugged, silent, write blocked)
    reconnects: int = 0  # successful re-connections after the link was lost
    unknown_types: int = 0  # frames of a message type this version does not know (skipped)
    version_mismatches: int = 0  # frames from a peer with a different MAJOR protocol version (dropped)
    bad_messages: int = 0  # valid frames whose payload is shorter than the message layout
    rx_dropped: int = 0  # received messages dropped because the consumer's queue was full
    frames_tx: int = 0
    tx_dropped: int = 0  # messages not sent because the link was down
    bytes_rx: int = 0
    bytes_tx: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Received:
    """One message as received: its frame header, the typed message, and the host receive time.

    ``t_rx`` is ``time.perf_counter()`` taken by the reader thread right after the bytes arrived.
    """

    header: FrameHeader
    message: Message
    t_rx: float
