"""``python -m edge_bus.golden``: record a model's golden reference(s) on the bundled demo clip.

One reference per INT8 kernel class (see :mod:`edge_bus.golden`); ``--every-class`` records, in
child processes capped with ``ONEDNN_MAX_CPU_ISA``, one for each class below this CPU's too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_bus.errors import EdgeBusError, ModelError
from edge_bus.golden import (
    Golden,
    check_registrable,
    default_golden_path,
    make_golden,
    reference_class,
    register_golden,
)
from edge_bus.telemetry.hardware import CLASS_CAPS, classes_below
from edge_bus.zoo import resolve_model

__all__ = ["main", "record_references"]

_DESCRIPTION = ("Record what a model says about the bundled demo clip, frame by frame "
                "(edge-bus doctor compares with it).")


_CHILD_TIMEOUT_S = 900


def _record_capped(model: str, cls: str, max_frames: int) -> str:
    """Record and register the reference of class ``cls`` in a child process whose OpenVINO runs that
    class's INT8 kernels (``ONEDNN_MAX_CPU_ISA`` is read once, when the runtime loads)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": CLASS_CAPS[cls]}
    cmd = [sys.executable, "-m", "edge_bus.golden", "--model", model, "--register", "--max-frames", str(max_frames)]
    try:  # the demo clip takes seconds; a child that hangs must not hang calibrate or quantize with it
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=_CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelError(f"recording the {cls} reference did not finish in {_CHILD_TIMEOUT_S} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelError(f"recording the {cls} reference failed: {last.removeprefix('error: ')}")
    return done.stdout.strip()


def _summary(out: Path, golden: Golden, here: str) -> str:
    lesions = int(golden.lesion.sum())
    made_with = f"{here} kernels" if here == here.lower() else f"on {here}"  # a CPU kernel class, or a device
    return (f"wrote {out}: {len(golden)} frames, {lesions} with a lesion, precision {golden.meta.get('precision')}, "
            f"{made_with}")


def record_references(model: str | None, *, every_class: bool = True, max_frames: int = 0,
                      device: str = "CPU") -> list[str]:
    """Record this machine's golden reference of ``model`` and register it in its manifest; with
    ``every_class``, one for each INT8 kernel class below this CPU's too (in child processes capped
    with ``ONEDNN_MAX_CPU_ISA``). ``device``: the OpenVINO device it runs on (a GPU's reference is
    its own class). Returns a line per reference written."""
    manifest = resolve_model(model)
    here = reference_class(device)
    out = default_golden_path(manifest, here)
    golden = make_golden(str(manifest.folder), out, max_frames=max_frames, device=device)
    register_golden(manifest, out)
    lines = [_summary(out, golden, here)]
    if every_class:
        lines += [_record_capped(str(manifest.folder), cls, max_frames) for cls in classes_below(here)]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_bus.golden", description=_DESCRIPTION)
    parser.add_argument("--model", default=None, help="shipped model name, model folder or manifest.json")
    parser.add_argument("--out", type=Path, default=None,
                        help="output .npz [default: <model folder>/golden_demo.npz, or golden_demo_<class>.npz "
                             "when the primary reference was made with another INT8 kernel class]")
    parser.add_argument("--max-frames", type=int, default=0, help="only the first N demo frames (0: all)")
    parser.add_argument("--device", default="CPU",
                        help="OpenVINO device to record on [default: CPU]; a GPU or NPU gets a reference of its own")
    parser.add_argument("--register", action="store_true",
                        help="add the file to the model's manifest (role golden_demo or golden_demo_<class>) "
                             "with its sha256")
    parser.add_argument("--every-class", action="store_true",
                        help="with --register: also record a reference for each INT8 kernel class below this "
                             "CPU's (avx2 on a VNNI CPU; vnni and avx2 on an AMX one)")
    args = parser.parse_args(argv)
    if args.every_class and (not args.register or args.out is not None):
        parser.error("--every-class names its files itself: give it with --register and without --out")
    try:
        if args.register and args.out is None:
            for line in record_references(args.model, every_class=args.every_class, max_frames=args.max_frames,
                                          device=args.device):
                print(line)
            return 0
        manifest = resolve_model(args.model)
        here = reference_class(args.device)
        out = Path(args.out) if args.out is not None else default_golden_path(manifest, here)
        if args.register:
            check_registrable(manifest, out)  # before minutes of streaming, not after
        golden = make_golden(args.model, out, max_frames=args.max_frames, device=args.device)
        if args.register:
            register_golden(manifest, out)
        print(_summary(out, golden, here))
    except EdgeBusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
