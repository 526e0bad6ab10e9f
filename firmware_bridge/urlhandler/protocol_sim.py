"""pyserial URL handler for ``sim://``: a serial port wired to an in-process simulated board.

* ``sim://dev3`` - the running :class:`~firmware_bridge.sim_runtime.SimulatedDevice` named ``dev3``
  (``device.url``); it keeps running when the port closes.
* ``sim://?fps=30&drift_ppm=50&jitter_ms=1&corrupt=0.01&seed=1`` - a private board built from the
  query (keys in :data:`firmware_bridge.sim_config.QUERY_KEYS`); it lives as long as this port object
  and runs while the port is open, so a reconnect finds the same board (and the same clock).

While the board is unplugged, reads and writes raise ``SerialException`` and ``open()`` fails,
like a USB serial adapter that was pulled out.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from firmware_bridge.errors import BridgeError
from firmware_bridge.sim_config import SimConfig
from firmware_bridge.sim_runtime import SimulatedDevice, lookup_device

__all__ = ["Serial"]


class SimOptionError(SerialException):
    """The ``sim://`` URL itself is wrong (an unknown option, a bad value, no such named device):
    the link reports it as :class:`~firmware_bridge.errors.SimulatorError`, not as a cable problem."""


class Serial(SerialBase):
    """A pyserial port whose other end is a simulated controller board."""

    is_open: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._device: SimulatedDevice | None = None
        self._owned = False
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._broken: str | None = None
        self._cancel = False
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        device = self._resolve(str(self._port))
        if not device.board.plugged:
            raise SerialException(f"{self._port}: simulated device is unplugged")
        with self._cond:
            self._rx.clear()
            self._broken = None
        device.board.attach(self._deliver, self._unplugged, device.wake)
        if self._owned:
            device.start()
        self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            if self._device is not None:
                self._device.board.detach()
                if self._owned:
                    self._device.stop()
            with self._cond:
                self._cond.notify_all()

    def _resolve(self, url: str) -> SimulatedDevice:
        if self._device is not None:
            return self._device
        parts = urlsplit(url)
        if parts.scheme.lower() != "sim":
            raise SerialException(f"expected a sim:// URL, got {url!r}")
        try:
            if parts.netloc:
                if parts.query:  # a running board has its settings: the options were silently ignored
                    raise SimOptionError(f"options are for a board of its own (sim://?{parts.query}); "
                                         f"the running board {parts.netloc} keeps its settings")
                self._device = lookup_device(parts.netloc)
            else:
                self._device = SimulatedDevice(SimConfig.from_query(parts.query), register=False)
                self._owned = True
        except BridgeError as exc:
            raise SimOptionError(str(exc)) from None
        return self._device

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """Nothing to configure: baud rate and framing options don't apply to a simulated wire."""

    # -- board side --------------------------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        with self._cond:
            self._rx += data
            self._cond.notify_all()

    def _unplugged(self) -> None:
        with self._cond:
            self._broken = f"{self._port}: simulated device unplugged"
            self._cond.notify_all()

    # -- pyserial API --------------------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            self._cancel = False
            while len(self._rx) < size and self._broken is None and self.is_open and not self._cancel:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._broken is not None and not self._rx:
                raise SerialException(self._broken)
            data = bytes(self._rx[:size])
            del self._rx[:size]
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        if self._broken is not None or self._device is None:
            raise SerialException(self._broken or f"{self._port}: no simulated device")
        payload = bytes(data)
        self._device.board.receive(payload)
        return len(payload)

    def cancel_read(self) -> None:
        with self._cond:
            self._cancel = True
            self._cond.notify_all()

    def cancel_write(self) -> None:
        """Writes never block."""

    def reset_input_buffer(self) -> None:
        with self._cond:
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on the way out."""

    @property
    def out_waiting(self) -> int:
        return 0

    def _update_break_state(self) -> None:
        """No break condition on a simulated wire."""

    def _update_rts_state(self) -> None:
        """No modem lines on a simulated wire."""

    def _update_dtr_state(self) -> None:
        """No modem lines on a simulated wire."""

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
