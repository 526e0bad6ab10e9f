"""What edge-bus needs from a user's own ONNX model, checked before it is quantised.

The contract (``edge-bus models quantize --help`` and the README say the same):

* one input ``[1, 1, H, W]`` (batch may be dynamic; H and W fixed): a grayscale crop of the scan
  area, normalised as ``(pixel / 255 - mean) / std``;
* a **mask** output ``[1, 1, h, w]`` of lesion *logits* (any resolution: it is resized to the scan
  area; a final sigmoid must not be in the model);
* a **class** output of logits: ``[1, 2]`` = [presence, malignancy] (head ``presence_malignancy``,
  each through a sigmoid) or ``[1, 3]`` = [normal, benign, malignant] (head ``softmax3``).

Outputs are found by the names given, else by the names ``mask_logits`` / ``class_logits``, else by
shape (the one 4-D output is the mask, the one 2-D output the class), never by position. The model
is run once on calibration images (ONNX Runtime, FP32) so shapes and values are checked on real
outputs, and an output that comes out of a Sigmoid/Softmax (probabilities, not logits) or is not
floating point (labels, a thresholded mask) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge_bus.errors import ConfigError, ModelError
from edge_bus.zoo import HEADS

__all__ = ["HEADS", "OnnxContract", "check_outputs", "inspect_onnx", "output_producer"]

#: ops that turn logits into probabilities: an output made by one of them is refused
_SQUASHING_OPS = frozenset({"Sigmoid", "Softmax", "HardSigmoid", "LogSoftmax"})
#: ops that only move values around, looked through when finding what made an output
_PASS_THROUGH_OPS = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Resize", "Upsample",
                               "Flatten", "Slice", "Concat", "Cast"})
#: ops looked through when all their inputs but one are constants: a sigmoid then clamped
#: (``torch.sigmoid(x).clamp(1e-4, 1 - 1e-4)``) or scaled is still probabilities
_WITH_CONSTANTS_OPS = frozenset({"Clip", "Max", "Min", "Mul", "Div", "Add", "Sub"})

@dataclass(frozen=True)
class OnnxContract:
    """The input and the two outputs of a user's model, as edge-bus will use them."""

    input_name: str
    height: int
    width: int
    mask_output: str
    class_output: str
    head: str
    mask_shape: tuple[int, ...] = ()  # as run on calibration images (check_outputs), e.g. (1, 1, 112, 112)
    class_shape: tuple[int, ...] = ()


def _dims(shape: Sequence[Any]) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def inspect_onnx(session: Any, name: str, mask_output: str | None = None, class_output: str | None = None,
                 head: str = "presence_malignancy") -> OnnxContract:
    """Read the input and pick the outputs of an ``onnxruntime.InferenceSession`` (``name``: for messages)."""
    if head not in HEADS:
        raise ConfigError(f"head {head!r} is not one of {', '.join(HEADS)}")
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{name} has {len(inputs)} inputs; edge-bus feeds one [1, 1, H, W] image")
    inp = inputs[0]
    dims = _dims(inp.shape)
    if len(dims) != 4 or dims[1] != 1:
        need = f"{name} input {inp.name} has shape {list(inp.shape)}; edge-bus needs [1, 1, H, W] grayscale"
        if len(dims) == 4 and dims[3] in (1, 3) and dims[1] not in (1, 3):
            raise ModelError(f"{need}: it looks channels-last (NHWC) — export it channels-first (NCHW), or with a "
                             "Transpose at its input")
        if len(dims) == 4 and dims[1] == 3:
            raise ModelError(f"{need}: export a one-channel model (e.g. sum the first convolution's weights over its "
                             "3 input channels, as the shipped models do with their ImageNet stem)")
        raise ModelError(need)
    if getattr(inp, "type", "tensor(float)") != "tensor(float)":
        raise ModelError(f"{name} input {inp.name} is {inp.type}; edge-bus feeds float32 normalised as "
                         "(pixel / 255 - mean) / std — export a float input (the scaling goes in --mean / --std)")
    if dims[0] not in (1, None):
        raise ModelError(f"{name} input {inp.name} has batch {dims[0]}; edge-bus runs batch 1")
    height, width = dims[2], dims[3]
    if height is None or width is None:
        raise ModelError(f"{name} input {inp.name} has a dynamic height or width {list(inp.shape)}: export it with a "
                         "fixed size (e.g. torch.onnx.export with a [1, 1, 224, 224] example and dynamic_axes for "
                         "the batch only)")
    outs = {o.name: o.shape for o in session.get_outputs()}
    described = ", ".join(f"{n} {list(s)}" for n, s in outs.items())
    if len(outs) < 2:
        raise ModelError(f"{name} has {len(outs)} output ({described}); edge-bus needs two: mask logits and class "
                         "logits")
    for given, flag in ((mask_output, "--mask-output"), (class_output, "--class-output")):
        if given is not None and given not in outs:
            raise ModelError(f"{name} has no output {given!r} ({flag}); its outputs: {described}")
    if mask_output is None and "mask_logits" in outs:
        mask_output = "mask_logits"
    if class_output is None and "class_logits" in outs:
        class_output = "class_logits"
    if mask_output is None or class_output is None:
        four_d = [n for n, s in outs.items() if len(s) == 4 and n != class_output]
        two_d = [n for n, s in outs.items() if len(s) == 2 and n != mask_output]
        mask_output = mask_output or (four_d[0] if len(four_d) == 1 else None)
        class_output = class_output or (two_d[0] if len(two_d) == 1 else None)
    if mask_output is None or class_output is None or mask_output == class_output:
        raise ModelError(f"cannot tell which output of {name} is the mask and which the class logits ({described}): "
                         "pass --mask-output NAME (4-D [1, 1, h, w] logits) and --class-output NAME ([1, 2] or [1, 3])")
    return OnnxContract(inp.name, height, width, mask_output, class_output, head)


def output_producer(onnx_path: Any, output: str) -> str | None:
    """The op that computes ``output`` in the ONNX graph, looking through ops that only reshape or
    resize (None when the ``onnx`` package is missing or the output is a graph input/initializer)."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    made_by = {out: node for node in graph.node for out in node.output}
    constants = {t.name for t in graph.initializer} | {
        out for node in graph.node if node.op_type == "Constant" for out in node.output}
    name, seen = output, set()
    while name in made_by and name not in seen:
        seen.add(name)
        node = made_by[name]
        if node.op_type in _WITH_CONSTANTS_OPS:
            varying = [i for i in node.input if i and i not in constants]
            if len(varying) == 1:
                name = varying[0]
                continue
        if node.op_type not in _PASS_THROUGH_OPS or not node.input:
            return str(node.op_type)
        name = node.input[0]
    return None


def check_outputs(contract: OnnxContract, session: Any, tensors: Sequence[np.ndarray], name: str,
                  mask_producer: str | None = None, class_producer: str | None = None) -> OnnxContract:
    """Run the model on a few calibration tensors and check the outputs' shapes, types and values;
    returns the contract with the shapes seen. ``mask_producer`` / ``class_producer``: the ops that
    make the outputs (a final sigmoid or softmax is refused: edge-bus applies its own to logits)."""
    for role, output, producer in (("mask", contract.mask_output, mask_producer),
                                   ("class", contract.class_output, class_producer)):
        if producer in _SQUASHING_OPS:
            raise ModelError(f"{role} output {output} of {name} comes out of a {producer}, so it holds "
                             "probabilities; edge-bus needs logits (it applies the sigmoid / softmax itself): "
                             f"export the model without its final {producer}")
    shapes: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
    for tensor in tensors:
        try:
            mask, logits = session.run([contract.mask_output, contract.class_output], {contract.input_name: tensor})
        except Exception as exc:  # ORT's own exception types
            reason = str(exc).splitlines()[0]
            raise ModelError(f"{name} fails on a calibration image in ONNX Runtime: {reason}") from None
        for role, output, value in (("mask", contract.mask_output, mask), ("class", contract.class_output, logits)):
            if not np.issubdtype(np.asarray(value).dtype, np.floating):
                raise ModelError(f"{role} output {output} of {name} is {np.asarray(value).dtype} (labels or a "
                                 "thresholded result, not logits); edge-bus needs float logits — export the values "
                                 "before the ArgMax / comparison")
        if mask.ndim != 4 or mask.shape[:2] != (1, 1) or min(mask.shape[2:]) < 2:
            raise ModelError(f"mask output {contract.mask_output} of {name} has shape {list(mask.shape)}; edge-bus "
                             "needs [1, 1, h, w] lesion logits (one channel: for background/lesion logits export "
                             "their difference, lesion - background)")
        want = HEADS[contract.head]
        if logits.ndim != 2 or logits.shape[0] != 1:  # a [2] passed here, then the runtime read it as 1 value
            raise ModelError(f"class output {contract.class_output} of {name} has shape {list(logits.shape)}; "
                             f"edge-bus needs [1, {want}] logits for head {contract.head} (the batch first)")
        if logits.size != want:
            other = [h for h, n in HEADS.items() if n == logits.size]
            hint = f" — pass --head {other[0]}" if other else ""
            raise ModelError(f"class output {contract.class_output} of {name} has {logits.size} values "
                             f"({list(logits.shape)}); head {contract.head} needs {want}{hint}")
        if not (np.isfinite(mask).all() and np.isfinite(logits).all()):
            raise ModelError(f"{name} gives NaN or infinite outputs on a calibration image: check --mean / --std "
                             "and the model")
        shapes = (tuple(int(d) for d in mask.shape), tuple(int(d) for d in logits.shape))
    return replace(contract, mask_shape=shapes[0], class_shape=shapes[1])
