"""The firmware-bridge exception tree.

Every class derives from :class:`edge_bus.errors.BridgeError`, so the CLI turns any of them into a
one-line message and exit code 6. ``str(err)`` names the thing that failed and says what to do.

::

    edge_bus.errors.BridgeError
    └── BridgeError                 base of everything raised by firmware_bridge
        ├── PortUnavailable         the serial port / URL can't be opened
        ├── LinkTimeout             the device did not answer in time
        │   └── LinkDown            the link is down: the message was not even sent
        ├── LinkClosed              the link was used after close()
        ├── ProtocolVersionError    the peer speaks a different MAJOR protocol version
        ├── FrameError              one frame on the wire is unusable (counted, never user-facing)
        │   ├── CrcMismatch
        │   ├── MalformedFrame
        │   └── OversizeFrame
        ├── MessageError            a frame is valid but its message is not (counted, never user-facing)
        │   ├── UnknownMessageType
        │   └── MalformedMessage
        ├── SimulatorError          bad simulator option (sim:// query string, CLI flag)
        └── LinkConfigError         a LinkConfig value or open() argument out of range (also a ValueError)
"""

from __future__ import annotations

from edge_bus.errors import BridgeError as _EdgeBusBridgeError

__all__ = [
    "BridgeError",
    "CrcMismatch",
    "FrameError",
    "LinkClosed",
    "LinkConfigError",
    "LinkDown",
    "LinkTimeout",
    "MalformedFrame",
    "MalformedMessage",
    "MessageError",
    "OversizeFrame",
    "PortUnavailable",
    "ProtocolVersionError",
    "SimulatorError",
    "UnknownMessageType",
]


class BridgeError(_EdgeBusBridgeError):
    """Base of every error raised by :mod:`firmware_bridge`."""


class PortUnavailable(BridgeError):
    """The serial port or URL can't be opened (unplugged, wrong path, held by another program)."""


class LinkTimeout(BridgeError):
    """The device did not answer within the timeout."""


class LinkDown(LinkTimeout):
    """The link is down (unplugged, the board reset), so the message was not sent; the link reconnects by
    itself. A :class:`LinkTimeout`, so code that treats both alike still does."""


class LinkClosed(BridgeError):
    """The link or bridge was used after ``close()``."""


class ProtocolVersionError(BridgeError):
    """The peer speaks a different MAJOR version of the firmware-bridge protocol."""

    def __init__(self, message: str, *, peer_major: int, peer_minor: int) -> None:
        super().__init__(message)
        self.peer_major = peer_major
        self.peer_minor = peer_minor


class FrameError(BridgeError):
    """One frame on the wire can't be used; the packetizer counts it and resyncs."""


class CrcMismatch(FrameError):
    """The CRC-32 trailer does not match header + payload."""


class MalformedFrame(FrameError):
    """Bad COBS data, a frame shorter than header + CRC, or a length field that disagrees with the frame."""


class OversizeFrame(FrameError):
    """A frame (or its length field) is larger than the protocol maximum."""


class MessageError(BridgeError):
    """A well-framed message can't be interpreted."""


class UnknownMessageType(MessageError):
    """The message type is not known to this protocol version (skipped, never fatal)."""

    def __init__(self, message: str, *, msg_type: int) -> None:
        super().__init__(message)
        self.msg_type = msg_type


class MalformedMessage(MessageError):
    """The payload is shorter than the fixed layout of its message type, or a field is out of range."""


class SimulatorError(BridgeError):
    """A simulator option (``sim://`` query string or CLI flag) is invalid."""


class LinkConfigError(BridgeError, ValueError):
    """A :class:`~firmware_bridge.link_types.LinkConfig` value or an ``open()`` argument is out of range."""
