#!/usr/bin/env bash
# An emt_net GPU sweep (plans/emt_net_gpu.plan.md, emt_net_gpu2.plan.md): the runs listed in a .runs file
# (one per line: a name, then train.py options) side by side on one GPU, from a portable cache (python -m
# models.training.pack), then the three best checkpoints by pooled validation score, every history and
# every log into OUT.
#
#   bash models/training/gpu_sweep.sh RUNS_FILE PACK_DIR CHECKPOINT_DIR OUT EPOCHS [MAX_MINUTES]
#
# MAX_MINUTES (default 0: none) stops each run after the epoch that passes it, so a run on a slower
# machine still ends with its best checkpoint. Environment: PY (default python3),
# EFFICIENTNET_LITE0_WEIGHTS where the package is not installed.
set -euo pipefail
RUNS_FILE=$1 PACK=$2 CK=$3 OUT=$4 EPOCHS=$5 MAX_MINUTES=${6:-0}
PY=${PY:-python3}
COMMON=(--model emt_net --mask-stride 2 --pack "$PACK" --val-crops 0 --device cuda --threads 2 --epochs "$EPOCHS"
        --max-minutes "$MAX_MINUTES")
mkdir -p "$CK" "$OUT"
while read -r name options; do
    [ -n "$name" ] || continue
    # shellcheck disable=SC2086  # the options are words
    "$PY" -m models.training.train "${COMMON[@]}" $options --out "$CK/$name" >"$CK/$name.log" 2>&1 &
done <"$RUNS_FILE"
wait
"$PY" - "$CK" "$OUT" <<'PY'
import json, shutil, sys
from pathlib import Path
ck, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = {}
for run in sorted(p for p in ck.iterdir() if p.is_dir()):
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]
    best = max(hist, key=lambda r: r["score"]) if hist else None
    summary[run.name] = {"best": best, "history": hist}
    print(run.name, json.dumps(best), flush=True)
(out / "sweep.json").write_text(json.dumps(summary, indent=1))
ranked = sorted((r for r in summary if summary[r]["best"]), key=lambda r: -summary[r]["best"]["score"])
for name in ranked[:3]:
    shutil.copy(ck / name / "best.pt", out / f"{name}.pt")
with open(out / "logs.txt", "w") as fh:
    for log in sorted(ck.glob("*.log")):
        fh.write(f"== {log.name}\n" + "".join(log.read_text().splitlines(True)[-8:]))
PY
