"""Training wall time per device kind: a fine-tune adds its own time to its start's, so a CPU
fine-tune of GPU-trained weights reads "8 min on a GPU + 5 min on 2 CPU cores" (no torch needed)."""

from __future__ import annotations

from typing import Any

WHERE = {"cuda": "a GPU", "cpu": "2 CPU cores"}


def device_kind(device: object) -> str:
    """"cuda" for any GPU (cuda, cuda:1), "cpu" otherwise: what a training wall time is reported by."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


def add_wall(by_device: dict[str, float], kind: str, seconds: float) -> dict[str, float]:
    """``by_device`` with ``seconds`` more on ``kind`` (a new dict; rounded to 0.1 s)."""
    out = dict(by_device)
    out[kind] = round(out.get(kind, 0.0) + seconds, 1)
    return out


def wall_time_text(training: dict[str, Any]) -> str:
    """A manifest's ``training`` record as "8 min on a GPU + 5 min on 2 CPU cores", or, without
    ``train_wall_s_by_device`` (manifests made before it), all of it on the one ``device`` recorded."""
    by_device = training.get("train_wall_s_by_device") or {
        device_kind(training.get("device", "cpu")): training["train_wall_s"]}
    return " + ".join(f"{s / 60:.0f} min on {WHERE.get(kind, kind)}" for kind, s in by_device.items())
