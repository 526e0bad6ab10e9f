"""An engine whose runtime call is synchronous (ONNX Runtime's ``session.run``, the fake engine):
``infer_async`` runs it on a pool of ``requests`` threads, like OpenVINO's infer requests, and
delivers each result to the callback from that thread. An error on a worker (the runtime's or
the callback's) ends the stream: it is raised from the next ``infer_async`` or ``wait``."""

from __future__ import annotations

import threading
from abc import abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from edge_bus.engines.base import Engine, EngineConfig
from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

__all__ = ["PooledEngine"]


class PooledEngine(Engine):
    """Subclasses implement :meth:`_run_session` (one synchronous inference) and may extend
    :meth:`_release` (free the runtime after the pool has stopped)."""

    def __init__(self, manifest: Manifest, config: EngineConfig) -> None:
        super().__init__(manifest, config)
        self._pool = ThreadPoolExecutor(max_workers=self.requests, thread_name_prefix=self.name)
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        return max(1, self.config.requests or 1)

    @abstractmethod
    def _run_session(self, tensor: np.ndarray) -> ModelOutputs:
        """One inference; errors as :class:`~edge_bus.errors.EngineError`."""

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Free the runtime (the pool has stopped)."""

    def infer(self, tensor: np.ndarray) -> ModelOutputs:
        self.check_input(tensor)
        return self._run_session(tensor)

    def _run(self, tensor: np.ndarray, user_data: object) -> None:
        try:
            outputs = self._run_session(tensor)
        except BaseException as exc:  # noqa: BLE001 - raised again from the next infer_async / wait
            self._keep_error(exc)
            return
        self._deliver(user_data, outputs)

    def infer_async(self, tensor: np.ndarray, user_data: object) -> None:
        self.check_input(tensor)
        self._raise_callback_error()
        with self._lock:
            self.check_open()  # closed by another thread meanwhile: not "cannot schedule new futures"
            self._pending = [f for f in self._pending if not f.done()]
            while len(self._pending) >= self.requests:
                self._pending.pop(0).result()  # never raises: _run keeps the error
            self._raise_callback_error()  # the one just waited for failed: queue nothing more
            self._pending.append(self._pool.submit(self._run, tensor, user_data))

    def wait(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for f in pending:
            f.result()
        self._raise_callback_error()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            self._release()
