"""The in-package fake of the inference device, like ``sim://`` for the controller board and
``replay:`` for the capture device: the :class:`~edge_bus.engines.base.Engine` interface with no
runtime and no model file behind it. It answers every frame with a fixed, known prediction, and can
be told to be slow or to fail at a given inference, so that a pipeline, an application or a test
can rehearse those cases without OpenVINO, a GPU or a broken model::

    from edge_bus import StreamConfig, run_stream
    from edge_bus.engines.fake import FakeBehaviour, fake_engine_factory

    run_stream(StreamConfig(source="demo", out="runs/fake"),
               engine_factory=fake_engine_factory(FakeBehaviour(delay_ms=20, fail_at=100)))

The answer: a disk-shaped lesion in the middle of the model's input (a quarter of its side in
radius) with P(lesion) 0.9999 (above every shipped model's lesion threshold: emt_net's is 0.9627, hgm_net's 0.9995) and
P(malignant | lesion) ``malignancy``, or no lesion (P(lesion) 0.01) with ``lesion=False``. The mask
comes at half the input resolution, as the shipped models' does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_bus.checks import check_fields
from edge_bus.engines.base import EngineConfig
from edge_bus.engines.pooled import PooledEngine
from edge_bus.errors import ConfigError, EngineError
from edge_bus.types import ModelOutputs
from edge_bus.zoo import Manifest

__all__ = ["FakeBehaviour", "FakeEngine", "fake_engine_factory"]



def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class FakeBehaviour:
    """``lesion`` / ``malignancy``: the answer; ``presence``: its P(lesion) (default 0.9999 with a
    lesion, 0.01 without; e.g. 0.02 with ``lesion=True`` draws the disk but doubts it, which the
    runtime's mask gate hides). ``delay_ms``: how long each inference takes.
    ``fail_at``: the 0-based inference (the pipeline's warm-up inference is number 0) that raises an
    :class:`~edge_bus.errors.EngineError`, as a runtime fault or a lost device would; None: never."""

    lesion: bool = True
    malignancy: float = 0.5
    presence: float | None = None
    delay_ms: float = 0.0
    fail_at: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, flags=("lesion",), numbers=("malignancy", "presence", "delay_ms"), integers=("fail_at",),
                     optional=("fail_at", "presence"))
        for name in ("malignancy", "presence"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ConfigError(f"FakeBehaviour.{name} must lie strictly between 0 and 1, got {value}")
        if self.delay_ms < 0 or (self.fail_at is not None and self.fail_at < 0):
            raise ConfigError(f"FakeBehaviour.delay_ms and fail_at must be >= 0, got {self.delay_ms} and "
                              f"{self.fail_at}")


class FakeEngine(PooledEngine):
    """An :class:`~edge_bus.engines.base.Engine` that answers with :class:`FakeBehaviour`'s prediction."""

    name = "fake"

    def __init__(self, manifest: Manifest, config: EngineConfig, behaviour: FakeBehaviour | None = None) -> None:
        super().__init__(manifest, config)
        self.behaviour = behaviour or FakeBehaviour()
        self.inferences = 0  # started so far, warm-up included
        self._count_lock = threading.Lock()
        spec = manifest.input
        h, w = max(2, spec.height // 2), max(2, spec.width // 2)
        yy, xx = np.mgrid[0:h, 0:w]
        inside = (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (min(h, w) / 4) ** 2
        b = self.behaviour
        self._mask = np.where(inside & b.lesion, 6.0, -6.0).astype(np.float32)[None, None]
        p = b.presence if b.presence is not None else (0.9999 if b.lesion else 0.01)
        if manifest.head == "softmax3":  # normal, benign, malignant logits with the same probabilities
            probs = [1 - p, p * (1 - b.malignancy), p * b.malignancy]
            self._logits = np.log(np.array(probs, np.float32))[None]
        else:
            self._logits = np.array([[_logit(p), _logit(b.malignancy)]], np.float32)

    @property
    def precision(self) -> str:
        return "fake"

    @property
    def model_file(self) -> str:
        return "fake-engine"

    def _run_session(self, tensor: np.ndarray) -> ModelOutputs:
        with self._count_lock:
            number, self.inferences = self.inferences, self.inferences + 1
        if self.behaviour.delay_ms:
            time.sleep(self.behaviour.delay_ms / 1000.0)
        if self.behaviour.fail_at is not None and number >= self.behaviour.fail_at:
            raise EngineError(f"fake engine: inference {number} failed "
                              f"(FakeBehaviour.fail_at={self.behaviour.fail_at})")
        return self._outputs(self._mask, self._logits)


def fake_engine_factory(behaviour: FakeBehaviour | None = None) -> Callable[[Manifest, EngineConfig], FakeEngine]:
    """An ``engine_factory`` for :func:`~edge_bus.pipeline.run_stream` / :func:`~edge_bus.pipeline.compose`
    that makes a :class:`FakeEngine` with ``behaviour`` for the run's model."""
    return lambda manifest, config: FakeEngine(manifest, config, behaviour)
