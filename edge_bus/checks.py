"""Type checks for the settings objects of the Python API (:class:`~edge_bus.render.OverlayStyle`,
:class:`~edge_bus.engines.base.EngineConfig`, :class:`~edge_bus.postprocess.PostprocessConfig`,
:class:`~edge_bus.preprocess.InputSpec`): a value of the wrong type is a one-line
:class:`~edge_bus.errors.ConfigError` when the object is made, not a ``TypeError`` from a comparison
or a ``cv2.error`` on a worker thread minutes later."""

from __future__ import annotations

import math
import operator
from typing import Any, SupportsIndex, TypeGuard

import numpy as np

from edge_bus.errors import ConfigError

__all__ = ["check_fields", "is_pixel_format", "is_whole_number", "number_or_none"]


def check_fields(obj: Any, *, numbers: tuple[str, ...] = (), integers: tuple[str, ...] = (),
                 texts: tuple[str, ...] = (), flags: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
    """Check the type of each named field of ``obj``: finite real ``numbers`` (numpy scalars too),
    ``integers``, ``texts`` (str), ``flags`` (bool). A field named in ``optional`` may be None.

    An accepted number or flag is stored back as Python's own ``float``, ``int`` or ``bool`` (also on a
    frozen dataclass): a numpy scalar kept as it was failed later, far from where it was given
    (``json.dumps`` of an ``np.int64``, OpenVINO's reshape to an ``np.int64`` batch). Texts are kept as
    given (a ``str`` Enum member stays itself)."""
    owner = type(obj).__name__
    for names, accept, what, plain in ((numbers, _is_number, "a finite number", float),
                                       (integers, is_whole_number, "an integer", operator.index),
                                       (texts, _is_text, "a string", _same), (flags, _is_flag, "True or False", bool)):
        for name in names:
            value = getattr(obj, name)
            if value is None and name in optional:
                continue
            if not accept(value):
                raise ConfigError(f"{owner}.{name} must be {what}, got {value!r} ({type(value).__name__})")
            object.__setattr__(obj, name, plain(value))


def _same(value: Any) -> Any:
    return value


def is_whole_number(value: object) -> TypeGuard[SupportsIndex]:
    """An ``int`` or a numpy integer (anything with ``__index__``), not a ``bool``."""
    return not isinstance(value, bool) and hasattr(value, "__index__")


def number_or_none(value: object) -> float | None:
    """``value`` as a float when it is a JSON number (not a bool), else None: for optional, display-only
    numbers read from a manifest."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str | bytes):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_flag(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def is_pixel_format(text: str) -> bool:
    """Four printable ASCII characters, as V4L2 names its pixel formats (``MJPG``, ``YUYV``, ``Y16 ``)."""
    return len(text) == 4 and text.isascii() and text.strip().isprintable()
