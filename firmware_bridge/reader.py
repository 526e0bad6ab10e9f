"""The reader thread: reads whatever the port has and queues it, time-stamped. It never parses.

Like the reader of pyserial's ``serial.threaded``, minus the protocol callback: parsing happens in
the link's dispatcher thread, so a slow consumer never delays reading (or the receive time stamps).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import serial

__all__ = ["PORT_ERRORS", "Chunk", "PortDown", "ReaderThread"]

# pyserial raises TypeError/ValueError too when a port is closed under a blocked read
PORT_ERRORS = (serial.SerialException, OSError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from the port, with ``time.perf_counter()`` right after the read returned."""

    generation: int
    data: bytes
    t_rx: float


@dataclass(frozen=True, slots=True)
class PortDown:
    """The port failed (unplugged, closed under us); ``generation`` identifies the connection."""

    generation: int
    reason: str


class ReaderThread(threading.Thread):
    """Reads whatever the port has and puts it, time-stamped, on the inbox. Never parses."""

    def __init__(self, port: serial.SerialBase, inbox: queue.SimpleQueue[object], generation: int) -> None:
        super().__init__(name=f"bridge-reader-{generation}", daemon=True)
        self._port = port
        self._inbox = inbox
        self._generation = generation
        self._halt = threading.Event()
        # when bytes last arrived (perf_counter; the thread's start before any): the link's loss
        # detection reads it here, so a slow message consumer can't make a live link look dead
        self.last_rx = time.perf_counter()

    def run(self) -> None:
        port = self._port
        while not self._halt.is_set():
            try:
                data = port.read(1)
                waiting = port.in_waiting if data else 0
                if waiting:
                    data += port.read(waiting)
            except PORT_ERRORS as exc:
                if not self._halt.is_set():
                    self._inbox.put(PortDown(self._generation, str(exc) or type(exc).__name__))
                return
            if data:
                t_rx = time.perf_counter()
                self.last_rx = t_rx
                self._inbox.put(Chunk(self._generation, data, t_rx))

    def halt(self, timeout: float) -> None:
        self._halt.set()
        try:
            self._port.cancel_read()
        except (AttributeError, *PORT_ERRORS):
            pass  # no cancel_read on this port type: the read timeout wakes the thread
        self.join(timeout)
