"""firmware_bridge: edge-bus's serial link to an ultrasound scanner's controller board.

Layers (each usable alone): :mod:`~firmware_bridge.framing` (pure COBS + CRC-32 frames),
:mod:`~firmware_bridge.messages` (typed payloads), :mod:`~firmware_bridge.clock` (TIME_SYNC clock
model), :mod:`~firmware_bridge.link` (pyserial port + threads + reconnect), :mod:`~firmware_bridge.host`
(:class:`HostBridge`, what the stream pipeline uses; the values it hands out are in
:mod:`~firmware_bridge.host_types`) and the simulator
(:mod:`~firmware_bridge.simulator`, :mod:`~firmware_bridge.sim_runtime`, ``sim://`` URLs).
The wire protocol is specified in ``firmware_bridge/PROTOCOL.md``.
"""

from firmware_bridge.clock import ClockEstimate, ClockEstimator, SyncSample
from firmware_bridge.errors import (
    BridgeError,
    CrcMismatch,
    FrameError,
    LinkClosed,
    LinkConfigError,
    LinkDown,
    LinkTimeout,
    MalformedFrame,
    MalformedMessage,
    MessageError,
    OversizeFrame,
    PortUnavailable,
    ProtocolVersionError,
    SimulatorError,
    UnknownMessageType,
)
from firmware_bridge.framing import PROTOCOL_MAJOR, PROTOCOL_MINOR, Packetizer, decode_frame, encode_frame
from firmware_bridge.host import HostBridge
from firmware_bridge.host_types import DeviceEvents, HelloInfo, HostFrameMeta
from firmware_bridge.link import Link
from firmware_bridge.link_types import LinkConfig, LinkCounters, Received
from firmware_bridge.messages import Alert, AlertCode, ErrorMsg, FrameMeta, Message, ProbeState
from firmware_bridge.sim_config import SimConfig
from firmware_bridge.sim_runtime import PtyDevice, SimulatedDevice, simulate_pty
from firmware_bridge.simulator import VirtualBoard

__all__ = [
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "Alert",
    "AlertCode",
    "BridgeError",
    "ClockEstimate",
    "ClockEstimator",
    "CrcMismatch",
    "DeviceEvents",
    "ErrorMsg",
    "FrameError",
    "FrameMeta",
    "HelloInfo",
    "HostBridge",
    "HostFrameMeta",
    "Link",
    "LinkClosed",
    "LinkConfigError",
    "LinkConfig",
    "LinkCounters",
    "LinkDown",
    "LinkTimeout",
    "MalformedFrame",
    "MalformedMessage",
    "Message",
    "MessageError",
    "OversizeFrame",
    "Packetizer",
    "PortUnavailable",
    "ProbeState",
    "ProtocolVersionError",
    "PtyDevice",
    "Received",
    "SimConfig",
    "SimulatedDevice",
    "SimulatorError",
    "SyncSample",
    "UnknownMessageType",
    "VirtualBoard",
    "decode_frame",
    "encode_frame",
    "simulate_pty",
]
