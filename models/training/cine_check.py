"""Real video check: the 18 cine clips through `edge-bus stream` (shipped INT8 model, defaults).

    python -m models.training.cine_check > models/training/results/extra.md
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from edge_bus.config import build_config
from edge_bus.pipeline import run_stream


def main(data: Path = Path("../shared/data/cine")) -> None:
    rows = list(csv.DictReader(open(data / "labels.csv", newline="")))
    print("## Real cine clips (18 clips, 4 patients; no masks)\n")
    print("Each clip streamed with `edge-bus stream` (shipped INT8 model, balanced operating point, smoothing 0.5).")
    print("Lesion frames: share of frames where a lesion is detected. Clip verdict: see `edge_bus/summary.py`.\n")
    print("| clip | pathology | lesion frames | clip verdict | mean malignancy of lesion frames |")
    print("|---|---|---|---|---|")
    correct = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            out = Path(tmp) / r["clip"]
            res = run_stream(build_config(source=str(data / r["clip"]), out=out, video=False, progress=False))
            recs = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
            share = sum(x["lesion"] for x in recs) / len(recs)
            v = res.verdict
            correct += v["label"] == r["label"]
            mm = "–" if v.get("mean_malignancy") is None else f"{v['mean_malignancy']:.3f}"
            print(f"| {r['clip']} | {r['label']} | {share:.2f} | {v['label']} | {mm} |")
    print(f"\nClip verdict equals the patient's pathology for {correct} of {len(rows)} clips.")


if __name__ == "__main__":
    main()
