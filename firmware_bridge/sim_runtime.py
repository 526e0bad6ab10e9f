"""Transports that run a :class:`~firmware_bridge.simulator.VirtualBoard`.

* :class:`SimulatedDevice` - in-process, reachable through pyserial at ``device.url`` (``sim://<name>``);
  an anonymous ``sim://?fps=30&...`` URL makes a private one per port.
* :class:`PtyDevice` - on a pseudo-terminal: point any serial program at ``device.path`` (/dev/pts/N).
* :func:`simulate_pty` - what ``edge-bus device simulate --pty`` runs.
"""

from __future__ import annotations

import itertools
import math
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.errors import SimulatorError
from firmware_bridge.sim_config import SimConfig
from firmware_bridge.simulator import BoardStats, VirtualBoard

__all__ = ["PtyDevice", "SimRunSummary", "SimulatedDevice", "lookup_device", "simulate_pty"]

_registry: dict[str, SimulatedDevice] = {}
_registry_lock = threading.Lock()
_names = itertools.count(1)


def lookup_device(name: str) -> SimulatedDevice:
    """The running :class:`SimulatedDevice` called ``name`` (the host part of its ``sim://`` URL)."""
    with _registry_lock:
        device = _registry.get(name)
    if device is None:
        raise SimulatorError(f"no simulated board named {name!r} runs in this program (a named sim://NAME is a "
                             "SimulatedDevice started in Python) — use sim:// for a board of its own, e.g. "
                             "sim://?fps=30, or edge-bus device simulate for one on a pseudo-terminal")
    return device


class SimulatedDevice:
    """A virtual board with its own thread. ``with SimulatedDevice(cfg) as dev: HostBridge.open(dev.url)``."""

    def __init__(self, config: SimConfig | None = None, *, register: bool = True) -> None:
        self.board = VirtualBoard(config)
        self.name = f"dev{next(_names)}"
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = register
        if register:
            with _registry_lock:
                _registry[self.name] = self

    @property
    def url(self) -> str:
        return f"sim://{self.name}"

    def start(self) -> SimulatedDevice:
        if self._thread is None:
            self._halt.clear()
            self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the board's thread (it can be started again)."""
        if self._thread is not None:
            self._halt.set()
            self._wake.set()
            self._thread.join(5.0)
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._registered:
            with _registry_lock:
                _registry.pop(self.name, None)
            self._registered = False

    def wake(self) -> None:
        self._wake.set()

    def __enter__(self) -> SimulatedDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._halt.is_set():
            delay = self.board.poll()
            if self._wake.wait(delay):
                self._wake.clear()


class PtyDevice:
    """A virtual board behind a pseudo-terminal; the host opens :attr:`path` like a real port."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.board = VirtualBoard(config)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline, before anyone opens the other end
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._dropped = 0
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.board.attach(self._write)

    @property
    def dropped_bytes(self) -> int:
        """Bytes lost because nobody read the terminal and its buffer was full."""
        return self._dropped

    def serve(self, seconds: float | None = None) -> None:
        """Run the board until ``seconds`` have passed or :meth:`stop` is called (blocks)."""
        deadline = None if seconds is None else time.perf_counter() + seconds
        while not self._halt.is_set():
            delay = min(self.board.poll(), 0.1)
            if deadline is not None:
                delay = min(delay, deadline - time.perf_counter())
                if delay <= 0:
                    return
            readable, _, _ = select.select([self._master], [], [], delay)
            if readable:
                try:
                    data = os.read(self._master, 65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # EIO: no process has the terminal open right now
                    time.sleep(min(delay, 0.01))
                    continue
                self.board.receive(data)

    def start(self) -> PtyDevice:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve, name="sim-pty", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.board.detach()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass  # already closed
        self._master = self._slave = -1

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._master, data)
        except (BlockingIOError, OSError):
            written = 0
        self._dropped += len(data) - written


@dataclass(frozen=True, slots=True)
class SimRunSummary:
    path: str
    seconds: float
    stats: BoardStats


def simulate_pty(config: SimConfig, seconds: float | None, on_ready: Callable[[str], None] = print,
                 link: str | os.PathLike[str] | None = None) -> SimRunSummary:
    """Run a board on a new pseudo-terminal until ``seconds`` pass or Ctrl-C; ``on_ready(path)`` first.

    ``link``: also make this path a symbolic link to the pseudo-terminal, removed at the end. Each
    run gets a new /dev/pts/N; a host given the link follows a restarted simulator (it reopens the
    same path when it reconnects)."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise SimulatorError(f"--seconds must be a finite number > 0, got {seconds:g}: give a positive duration, "
                             "or leave it out to run until Ctrl-C")
    start = time.perf_counter()
    device = PtyDevice(config)
    linked = None
    try:
        if link is not None:
            linked = _point_link(Path(link), device.path)
        on_ready(device.path)
        try:
            device.serve(seconds)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how an open-ended simulation ends
        return SimRunSummary(device.path, time.perf_counter() - start, device.board.stats())
    finally:
        device.close()
        if linked is not None and linked.is_symlink() and os.readlink(linked) == device.path:
            linked.unlink()  # still ours (a newer simulator may have taken the name over)


def _point_link(link: Path, target: str) -> Path:
    """Make ``link`` a symbolic link to ``target``, replacing a link a simulator left there: one to a
    pseudo-terminal that is gone. A link to a pseudo-terminal still open (a simulator still running,
    which took it back when the newer one ended) or to anything else (the user's own) is refused."""
    try:
        if link.is_symlink():
            old = os.readlink(link)
            if not old.startswith(("/dev/pts/", "/dev/ttys")):  # Linux, macOS pseudo-terminals
                raise SimulatorError(f"--link {link}: it is a link to {old}, not one a simulator made — give a new "
                                     "path")
            if os.path.exists(old):
                raise SimulatorError(f"--link {link}: it points to {old}, which is still open (another simulator "
                                     "serves it, or a terminal took its number) — stop that simulator, give another "
                                     "path, or remove the link")
            link.unlink()
        elif link.exists():
            raise SimulatorError(f"--link {link}: something that is not a link is there — give a new path")
        link.symlink_to(target)
    except OSError as exc:
        why = exc.strerror or exc
        raise SimulatorError(f"--link {link}: can't make the link ({why}) — give another path") from None
    return link
