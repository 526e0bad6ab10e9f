"""The ``--display`` window: one thread owns every OpenCV GUI call.

opencv-python's Qt backend draws only from the thread that created its window: ``cv2.imshow`` from
the outputs thread printed "QMetaObject::invokeMethod: No such method GuiReceiver::showImage" for
every frame and the window stayed empty. So :class:`DisplayWindow` runs ``namedWindow``, ``imshow``
and ``waitKey`` on its own thread, takes overlays through a keep-latest slot (a slow screen never
holds the pipeline back, and a frame it skips is only not shown, not lost: the video and the log
have it) and watches for ``q`` / Esc or the window being closed, which ask the stream to stop.

Without a screen Qt aborts the whole process (SIGABRT) inside ``namedWindow``, before Python can
catch anything, so :func:`check_display` tries it first in a throwaway process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np

from edge_bus.errors import ConfigError

__all__ = ["DisplayWindow", "check_display"]

_PROBE = "import cv2; cv2.namedWindow('edge-bus-probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
_NO_SCREEN = "run without --display (overlay.mp4 is written either way)"
_QUIT_KEYS = (ord("q"), ord("Q"), 27)


def check_display(timeout: float = 20.0) -> None:
    """Raise :class:`ConfigError` unless an OpenCV window can open here."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError(f"--display needs a screen and none is set (no DISPLAY): {_NO_SCREEN}, "
                          "or use ssh -X")
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--display: opening a test window failed ({type(exc).__name__}): {_NO_SCREEN}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip() and "QFontDatabase" not in ln
                 and "fonts" not in ln]
        why = lines[0] if lines else f"exit status {done.returncode}"
        raise ConfigError(f"--display: cannot open a window ({why}): {_NO_SCREEN}")


def _quiet_qt() -> None:
    """Before the first window: Qt's own warnings off unless the user set ``QT_LOGGING_RULES``. The
    window lives on its own thread, so at exit Qt printed "QObject::killTimer: Timers cannot be
    stopped from another thread" under the run's summary line, which a user can do nothing about."""
    os.environ.setdefault("QT_LOGGING_RULES", "default.warning=false")
    _use_system_fonts()


def _use_system_fonts() -> None:
    """opencv-python points Qt at a font folder it doesn't ship (Qt then complains on every draw):
    point it at the system's fonts instead, when there are some."""
    if os.path.isdir(os.environ.get("QT_QPA_FONTDIR", "")):
        return
    for folder in ("/usr/share/fonts/truetype", "/usr/share/fonts"):
        if os.path.isdir(folder):
            os.environ["QT_QPA_FONTDIR"] = folder
            return


class DisplayWindow:
    """Shows overlays in a window from its own GUI thread; ``window(img)`` never blocks.

    ``quit_requested`` is set when the user presses ``q`` / Esc in the window or closes it.
    """

    def __init__(self, title: str = "edge-bus", probe: bool = True) -> None:
        if probe:
            check_display()
        self.title = title
        self.quit_requested = threading.Event()
        self.shown = 0
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._closing = False
        self._ready = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="display", daemon=True)
        self._thread.start()
        self._ready.wait(20.0)
        if self._error is not None:
            raise ConfigError(f"--display: {self._error}: {_NO_SCREEN}")

    def __call__(self, overlay: object) -> None:
        assert isinstance(overlay, np.ndarray)
        with self._cond:
            self._latest = overlay
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Show the last overlay handed over, then close the window."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        import cv2

        _quiet_qt()

        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            self._error = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cv2.namedWindow failed"
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._cond:
                    if self._latest is None and not self._closing:
                        self._cond.wait(0.03)  # wake often enough to keep the window responsive
                    img, self._latest, closing = self._latest, None, self._closing
                done_with_window = self.quit_requested.is_set()  # imshow would open it again
                if img is not None and not done_with_window:
                    cv2.imshow(self.title, img)
                    self.shown += 1
                if closing:
                    break
                if done_with_window:
                    continue
                key = cv2.waitKey(1)
                if key >= 0 and (key & 0xFF) in _QUIT_KEYS:
                    self.quit_requested.set()
                elif self.shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                    self.quit_requested.set()  # closed with the window manager's button
        except cv2.error:
            self.quit_requested.set()  # the window went away under us: as if the user closed it
        finally:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
