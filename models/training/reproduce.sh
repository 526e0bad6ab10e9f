#!/usr/bin/env bash
# Reproduce the shipped models end to end from ../shared/data: training, ONNX export, INT8
# quantisation (NNCF + ORT QDQ), thresholds, test metrics, golden demo reference, Wp sweep, cine
# check, bootstrap intervals, mask sweep and the model card.
#
#   bash models/training/reproduce.sh --yes     the real run: ~4 h on 2 CPU cores (train.py uses a GPU
#                                               when torch sees one: minutes); replaces the shipped
#                                               models/emt_net, models/hgm_net, models/training/results/
#                                               and models/README.md (git checkout models/ restores them)
#   bash models/training/reproduce.sh --smoke   every step once with tiny settings (~10 min on 2 cores),
#                                               into a scratch folder; the shipped files are not touched
#
# Environment: PYTHON (default .venv/bin/python, made by `make test`), DATA (default ../shared/data),
# OUT (where the models, checkpoints, results and card go; default models/, or a new /tmp folder with
# --smoke), and the epoch counts EMT_EPOCHS (30, the full network), KD_EPOCHS (30, the shipped
# compact emt_net) and HGM_EPOCHS (2). Paths you set are relative to where you run the script; the
# defaults to the repository.
# Disk: the training cache takes ~0.8 GB (always models/training/cache/), the checkpoints ~0.4 GB.
set -euo pipefail
CALLER=$PWD
cd "$(dirname "$0")/../.."
ROOT=$PWD
from_caller() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$CALLER" "$1" ;; esac; }
if [ -n "${PYTHON:-}" ]; then case "$PYTHON" in */*) PY=$(from_caller "$PYTHON") ;; *) PY=$PYTHON ;; esac
else PY=.venv/bin/python; fi
if [ -n "${DATA:-}" ]; then DATA=$(from_caller "$DATA"); else DATA=../shared/data; fi
if [ -n "${OUT:-}" ]; then OUT=$(from_caller "$OUT"); fi
YES=0
SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --yes) YES=1 ;;
        --smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option $arg (--yes, --smoke, --help)" >&2; exit 2 ;;
    esac
done
command -v "$PY" >/dev/null 2>&1 || { echo "error: $PY not found — run 'make test' first (it creates .venv with the train extra), or set PYTHON" >&2; exit 2; }
[ -f "$DATA/busi/folds.csv" ] || { echo "error: no data at $DATA (no busi/folds.csv) — put the shared data beside the repo as ../shared/data, or set DATA" >&2; exit 2; }
"$PY" -c 'import torch, nncf' 2>/dev/null || { echo "error: torch/nncf missing in $PY — install the train extra: $PY -m pip install -e '.[train,quantize]'" >&2; exit 2; }

if [ "$SMOKE" = 1 ]; then
    OUT=${OUT:-$(mktemp -d /tmp/edge-bus-reproduce-smoke.XXXXXX)}
    EMT_EPOCHS=1 KD_EPOCHS=1 HGM_EPOCHS=1
    FAST=(--max-steps 2 --threads 1)  # 2 training steps an epoch; validation still runs whole
    CALIB=(--calib-images 16)
    WP=(--views 0 --wp 1 3)
    WP_FT=(--max-steps 2 --wp 1 3)
    REPS=(--reps 50)
else
    OUT=${OUT:-models}
    FAST=() CALIB=() WP=() WP_FT=() REPS=()
fi
# models/, ./models, $PWD/models, a symlink to it: all the shipped folder (a string compare let them through)
if [ "$OUT" = models ] || [ "$("$PY" -c 'import os, sys; print(os.path.realpath(sys.argv[1]))' "$OUT")" = \
        "$("$PY" -c 'import os, sys; print(os.path.realpath(sys.argv[1]))' "$ROOT/models")" ]; then
    OUT=models
fi
if [ "$OUT" = models ]; then  # the shipped layout
    CK=models/training/checkpoints RES=models/training/results CARD=models/README.md
else  # everything in OUT: a run elsewhere leaves the repository's models, results and card alone
    CK=$OUT/checkpoints RES=$OUT/results CARD=$OUT/README.md
fi
if [ "$OUT" = models ] && [ "$YES" != 1 ]; then
    cat >&2 <<MSG
This replaces the shipped models (models/emt_net, models/hgm_net, their golden reference),
models/training/results/ and models/README.md with what a new training run produces, and the
checkpoints in $CK. It takes about 4 h on 2 CPU cores (minutes of it with a GPU). git checkout models/ restores the shipped files.
  --yes      go on
  --smoke    every step once with tiny settings (~10 min), into a scratch folder
  OUT=DIR    write everything (models, checkpoints, results, card) to DIR instead
MSG
    exit 2
fi
mkdir -p "$OUT" "$CK" "$RES"
# every later step (golden, cine check, bootstrap, mask sweep) scores the models this run wrote
EDGE_BUS_MODELS=$(cd "$OUT" && pwd)
export EDGE_BUS_MODELS
step() { echo "== $(date +%H:%M:%S) $*" >&2; }
step "reproducing into $EDGE_BUS_MODELS (checkpoints $CK, results $RES)"

# The full EMT-NET (emt_net 1.1.0, shipped in sessions 19-20, plans/emt_net_gpu.plan.md): one stage from
# the ImageNet-initialised encoder with the stride-2 mask head, 30 epochs, lr 1e-3 cosine, the mask's Dice
# half over the batch and half per lesion image, each BUSI training image drawn 2.5 times as often as a
# BUS-BRA one. Its weights were trained on a GPU (gpu_sweep.sh, run gpu_img_bw; 8 minutes beside five
# other runs), from models.training.pack's bit-exact copy of this cache; a GPU run is not
# bit-reproducible. It is the teacher of the shipped emt_net and the start of hgm_net.
step "train the full EMT-NET (the teacher)"
"$PY" -m models.training.train --model emt_net --data "$DATA" --epochs "${EMT_EPOCHS:-30}" --mask-stride 2 \
    --dice image --busi-weight 2.5 --seed 0 --out "$CK/emt_net_long" ${FAST[@]+"${FAST[@]}"}
# The shipped emt_net (1.2.0, session 21, plans/emt_net_compact_kd30.plan.md): the compact encoder
# (EfficientNet-Lite0 cut after its 192-channel stage, 2.48 M parameters) in one stage from ImageNet with
# the same recipe, plus distillation from the full network just trained; 30 epochs, 81 minutes on 2 CPU
# cores. (The shipped run's teacher was emt_net 1.1.0 recovered from its FP32 ONNX by
# models.training.folded: the same function in eval mode.)
step "train emt_net (the compact encoder, distilled from the full network)"
"$PY" -m models.training.train --model emt_net --encoder efficientnet_lite0_compact --data "$DATA" \
    --epochs "${KD_EPOCHS:-30}" --mask-stride 2 --dice image --busi-weight 2.5 --distill 1.0 \
    --teacher "$CK/emt_net_long/best.pt" --seed 0 --out "$CK/emt_net_compact" ${FAST[@]+"${FAST[@]}"}
# HGM-Net (1.1.0, session 20, plans/hgm_net_from_emt11.plan.md): Stage 2 starts from the full EMT-NET
# (same encoder/decoder/heads); Stage 1 and the gates are new, the gates' gammas at zero, so it
# starts as that emt_net exactly. The whole network trains 2 epochs (lr 3e-4) with emt_net's loss and
# sampling (5 minutes on 2 CPU cores).
step "train hgm_net"
"$PY" -m models.training.train --model hgm_net --data "$DATA" --init "$CK/emt_net_long/best.pt" \
    --epochs "${HGM_EPOCHS:-2}" --lr 3e-4 --dice image --busi-weight 2.5 --out "$CK/hgm_net" ${FAST[@]+"${FAST[@]}"}

# The thresholds and metrics are measured with OpenVINO's AVX2 INT8 kernels on any CPU (the class in
# the shipped manifests' measured_on): INT8 outputs differ slightly between kernel classes, and a CPU
# with VNNI or AMX computes as an AVX2 one under this cap. The golden references make every class.
AVX2=(env ONEDNN_MAX_CPU_ISA=AVX2)
step "export + quantise emt_net"
"${AVX2[@]}" "$PY" -m models.training.export --data "$DATA" --checkpoint "$CK/emt_net_compact/best.pt" --name emt_net \
    --version 1.2.0 --out "$OUT/emt_net" --qdq --control-iterations 0 ${CALIB[@]+"${CALIB[@]}"}
step "export + quantise hgm_net"
"${AVX2[@]}" "$PY" -m models.training.export --data "$DATA" --checkpoint "$CK/hgm_net/best.pt" --name hgm_net \
    --version 1.1.0 --out "$OUT/hgm_net" --int8-only --control-iterations 4 ${CALIB[@]+"${CALIB[@]}"}
step "golden demo references (one per INT8 kernel class this CPU can run)"
"$PY" -m edge_bus.golden --model "$OUT/emt_net" --register --every-class
"$PY" -m edge_bus.golden --model "$OUT/hgm_net" --register --every-class
step "Wp sweep"
"$PY" -m models.training.wp_sweep --data "$DATA" --checkpoint "$CK/emt_net_compact/best.pt" \
    --out "$RES/wp_sweep.json" ${WP[@]+"${WP[@]}"}
step "Wp sweep, the whole network fine-tuned per Wp"
"$PY" -m models.training.wp_sweep --data "$DATA" --checkpoint "$CK/emt_net_compact/best.pt" --finetune-epochs 2 \
    --out "$RES/wp_finetune.json" ${WP_FT[@]+"${WP_FT[@]}"}
step "cine clips"
"${AVX2[@]}" "$PY" -m models.training.cine_check --data "$DATA" --out "$RES/extra.md"
step "bootstrap intervals"
"${AVX2[@]}" "$PY" -m models.training.bootstrap --data "$DATA" --model emt_net --out "$RES/bootstrap.json" ${REPS[@]+"${REPS[@]}"}
step "mask post-processing sweep"
"${AVX2[@]}" "$PY" -m models.training.mask_sweep --data "$DATA" --out "$RES/mask_sweep.md"
step "the no-lesion answer on lesion-free crops, per scanner"
"${AVX2[@]}" "$PY" -m models.training.presence_check --data "$DATA" --out "$RES/presence.md"
step "near-duplicates across BUSI's folds"
"${AVX2[@]}" "$PY" -m models.training.near_duplicates --data "$DATA" --out "$RES/near_duplicates.md" \
    --pairs "$RES/busi_near_duplicates.csv"
step "model card"
"$PY" -m models.training.model_card --root "$OUT" --wp "$RES/wp_sweep.json" --wp-finetune "$RES/wp_finetune.json" \
    --extra "$RES/extra.md" --bootstrap "$RES/bootstrap.json" --presence "$RES/presence.md" \
    --duplicates "$RES/near_duplicates.md" --out "$CARD"
step "done: models in $EDGE_BUS_MODELS, card $CARD"
