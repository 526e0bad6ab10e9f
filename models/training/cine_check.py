"""Real video check: the 18 cine clips through `edge-bus stream` (shipped INT8 model, defaults).

    python -m models.training.cine_check --data ../shared/data --out models/training/results/extra.md
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

from edge_bus.config import build_config
from edge_bus.pipeline import run_stream
from models.training.script import run_script, section_parser, write_section


def cine_table(cine: Path) -> str:
    """The model card's cine section: each clip's lesion-frame share and clip verdict (markdown)."""
    with open(cine / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = ["## Real cine clips (18 clips, 4 patients; no masks)\n",
             "Each clip streamed with `edge-bus stream` (shipped INT8 model, balanced operating point, smoothing 0.5).",
             "Lesion frames: share of frames where a lesion is detected. Clip verdict: see `edge_bus/summary.py`.",
             "Lesion episodes: stretches with a lesion in view (lesion frames at most 0.5 s apart, at least 0.2 s",
             "of them), each labelled by its own mean malignancy.\n",
             "| clip | pathology | lesion frames | clip verdict | mean malignancy of lesion frames | lesion episodes |",
             "|---|---|---|---|---|---|"]
    correct = 0
    hidden: list[str] = []  # clips read normal that hold a lesion episode
    with tempfile.TemporaryDirectory() as tmp:
        for i, r in enumerate(rows, 1):
            print(f"cine {i}/{len(rows)}: {r['clip']}", file=sys.stderr, flush=True)
            out = Path(tmp) / r["clip"]
            res = run_stream(build_config(source=str(cine / r["clip"]), out=out, video=False))
            recs = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
            share = sum(x["lesion"] for x in recs) / len(recs)
            v = res.verdict
            correct += v.label == r["label"]
            mm = "–" if v.mean_malignancy is None else f"{v.mean_malignancy:.3f}"
            episodes = ", ".join(e.label for e in v.episodes) or "–"
            if v.label == "normal" and v.episodes:
                hidden.append(f"{r['clip']} ({r['label']}; {share:.0%} of its frames, episodes: {episodes})")
            lines.append(f"| {r['clip']} | {r['label']} | {share:.2f} | {v.label} | {mm} | {episodes} |")
    lines.append(f"\nClip verdict equals the patient's pathology for {correct} of {len(rows)} clips.")
    if hidden:
        lines.append(f"Read normal (a lesion in under a tenth of the frames) but holding a lesion episode: "
                     f"{'; '.join(hidden)}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = section_parser(__doc__, "the shared data folder (its cine/ is read)").parse_args()
    write_section(cine_table(args.data / "cine"), args.out)


if __name__ == "__main__":
    run_script(main)
