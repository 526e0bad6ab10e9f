#!/usr/bin/env bash
# The emt_net GPU sweep of plans/emt_net_gpu.plan.md: six one-stage runs of train.py side by side on one
# GPU, from a portable cache (python -m models.training.pack), then the three best checkpoints by
# pooled validation score, every history and every log into OUT.
#
#   bash models/training/gpu_sweep.sh PACK_DIR CHECKPOINT_DIR OUT EPOCHS
#
# Environment: PY (default python3), EFFICIENTNET_LITE0_WEIGHTS where the package is not installed.
set -euo pipefail
PACK=$1 CK=$2 OUT=$3 EPOCHS=$4
PY=${PY:-python3}
COMMON=(--model emt_net --mask-stride 2 --pack "$PACK" --val-crops 0 --device cuda --threads 2 --epochs "$EPOCHS")
declare -A RUNS=(
    [gpu_img_s0]="--dice image --seed 0"
    [gpu_img_s1]="--dice image --seed 1"
    [gpu_img_ema]="--dice image --ema 0.999 --seed 0"
    [gpu_img_bw]="--dice image --busi-weight 2.5 --seed 0"
    [gpu_img_lr2]="--dice image --lr 2e-3 --seed 0"
    [gpu_batch_s0]="--dice batch --seed 0"
)
mkdir -p "$CK" "$OUT"
for name in "${!RUNS[@]}"; do
    # shellcheck disable=SC2086  # the options are words
    "$PY" -m models.training.train "${COMMON[@]}" ${RUNS[$name]} --out "$CK/$name" >"$CK/$name.log" 2>&1 &
done
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
