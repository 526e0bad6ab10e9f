#!/usr/bin/env bash
# The 5-fold BUSI cross-validation of plans/emt_net_cv.plan.md: models.training.cv for folds 0-4 side by
# side on one GPU, with the shipped emt_net's recipe, from a pack that holds the test fold
# (python -m models.training.pack --splits train val_busi test); every history into OUT.
#
#   bash models/training/gpu_cv.sh PACK_DIR CHECKPOINT_DIR OUT EPOCHS [MAX_MINUTES]
#
# Environment: PY (default python3), EFFICIENTNET_LITE0_WEIGHTS where the package is not installed.
set -euo pipefail
PACK=$1 CK=$2 OUT=$3 EPOCHS=$4 MAX_MINUTES=${5:-0}
PY=${PY:-python3}
mkdir -p "$CK" "$OUT"
for fold in 0 1 2 3 4; do
    "$PY" -m models.training.cv --fold "$fold" --pack "$PACK" --val-crops 0 --device cuda --threads 3 \
        --mask-stride 2 --dice image --busi-weight 2.5 --seed 0 --epochs "$EPOCHS" --max-minutes "$MAX_MINUTES" \
        --out "$CK/fold$fold" >"$CK/fold$fold.log" 2>&1 &
done
wait
for fold in 0 1 2 3 4; do
    cp "$CK/fold$fold/history.jsonl" "$OUT/cv_fold$fold.history.jsonl"
    tail -n 2 "$CK/fold$fold.log"
done
