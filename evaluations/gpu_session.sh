#!/usr/bin/env bash
# One lease of a GPU machine (issues 15 and 16), everything at once because the lease is short (15 minutes):
#   1. the zoo encoders re-trained, one process per encoder on the one GPU, each fitted to ZOO_MINUTES
#      (evaluations/pretrain_zoo.py --minutes), then BadEncoder planted in the new simclr_r18;
#   2. per-epoch validation curves of the adversarial fine-tuning defences (evaluations/defence_curves.py --device gpu)
#      at a larger budget than the CPU allows: full Fashion-MNIST (N_TRAIN images), PGD-10, CURVE_EPOCHS epochs; and
#      Gen-AF against the shipped backdoored encoder (evaluations/backdoor_eval.py);
#   3. the test suite on a CUDA machine (tests/test_cuda.py runs there; the rest runs with CUDA visible).
# Run from the repository root with OUT set to a folder for the results: `bash evaluations/gpu_session.sh`. Python
# packages missing on the machine come as wheels in .whl/ (pyautoattack's sources in .pyaa/), the Fashion-MNIST IDX
# files in .fmnist/. Whatever has finished is packed into $OUT at PACK_AT seconds and again at the end, so a run cut
# short still returns its results. SMOKE=1 shrinks every budget to check the script on a CPU.
set -u
OUT=${OUT:-/tmp/gpu_out}
W=${WORK:-/tmp/gpu_work}
mkdir -p "$OUT" "$W"
SMOKE=${SMOKE:-0}
ZOO_MINUTES=${ZOO_MINUTES:-4.5}
ZOO_DELAY=${ZOO_DELAY:-45}  # the zoo's timed trial runs once the other jobs load the GPU (else it over-promises)
CURVE_SECONDS=${CURVE_SECONDS:-420}
TEST_SECONDS=${TEST_SECONDS:-360}
PACK_AT=${PACK_AT:-530}
N_TRAIN=${N_TRAIN:-20000}
CURVE_EPOCHS=${CURVE_EPOCHS:-15}
BATCH=${BATCH:-512}
ZOO_SPECS=${ZOO_SPECS:-"simclr_r18:simclr:0 simclr_r18_s1:simclr:1 moco_r18:moco:0 barlow_twins_r18:barlow_twins:0 \
byol_r18:byol:0 simsiam_r18:simsiam:0"}
CURVE_SETTINGS=${CURVE_SETTINGS-"trades:random mart:random pgd_at:random genaf:sum:probe genaf:sum:probe:lamauto"}
TEST_PATHS=${TEST_PATHS:-tests}  # e.g. "tests/test_cuda.py tests/core/test_distributed.py": the CUDA-only tests
AUGMENTATION=${AUGMENTATION:-kornia}  # the zoo runs' views (pretrain_zoo.py --augmentation): batched for speed
SPEED_SECONDS=${SPEED_SECONDS:-60}  # evaluations/augment_speed.py first, alone on the GPU (0: skip)
PROBE_SECONDS=${PROBE_SECONDS:-0}  # > 0: linear-probe the new zoo encoders there too (CPU, 5k protocol only)
# CURVE_SETTINGS="" runs no curves and no backdoor evaluation: the whole machine for the zoo
DEVICE=gpu
if [ "$SMOKE" = 1 ]; then
  ZOO_MINUTES=0.3 ZOO_DELAY=1 CURVE_SECONDS=400 TEST_SECONDS=60 PACK_AT=900 N_TRAIN=600 CURVE_EPOCHS=2 BATCH=256
  DEVICE=cpu ZOO_SPECS="simclr_r18:simclr:0" CURVE_SETTINGS="genaf:sum:probe:lamauto" ZOO_IMAGES=2048
fi
start=$(date +%s)
log() { echo "[$(($(date +%s) - start)) s] $*" | tee -a "$W/session.log"; }

pack() {  # results so far -> $OUT (each file at most 16 MiB: the zoo's weights are split)
  mkdir -p "$W/zoo"
  cp art_ssl/zoo/zoo.json art_ssl/zoo/weights/*.safetensors "$W/zoo/" 2>/dev/null
  cp evaluations/results/pretrain_*_history.csv evaluations/results/backdoor_*_history.csv "$W/zoo/" 2>/dev/null
  for name in $(ls evaluations/checkpoints 2>/dev/null | sed -n 's/_epoch[0-9]*\.safetensors$//p' | sort -u); do
    grep -q '"sha256"' "$W/pretrain_$name.log" 2>/dev/null && continue  # finished: its weights are in the zoo
    last=$(ls evaluations/checkpoints/"$name"_epoch*.safetensors | sort -V | tail -1)  # a run cut short
    cp "$last" "$W/zoo/partial_$(basename "$last")"
  done
  python3 - "$W" <<'EOF' > "$W/curves_from_checkpoints.log" 2>&1
import sys
from pathlib import Path

import pandas as pd
import torch

rows = []  # per-epoch histories of every curve run, finished or killed, from the trainers' checkpoints
for f in sorted(Path(sys.argv[1]).glob("ckpt_*/*/*.pt")):
    state = torch.load(f, map_location="cpu", weights_only=False)
    for row in state["history"]:
        rows.append({"task": f.parts[-3][5:], "setting": f.parts[-2], "file": f.name, **row})
pd.DataFrame(rows).to_csv(Path(sys.argv[1]) / "curves_all_epochs.csv", index=False)
print(len(rows), "rows")
EOF
  rm -f "$OUT"/zoo.tgz.part* "$OUT"/logs.tgz
  tar czf - -C "$W" zoo | split -b 15m - "$OUT/zoo.tgz.part"
  tar czf "$OUT/logs.tgz" -C "$W" --exclude zoo --exclude 'ckpt_*' .
  log "packed: $(ls -l "$OUT" | tail -n +2 | awk '{print $5, $9}' | tr '\n' ' ')"
  cp "$W/session.log" "$OUT/"
}

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=$PWD:$PWD/.pyaa:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
ROOT=$PWD/.fmnist
[ -d "$ROOT" ] || ROOT=/usr/share/datasets/fashion-mnist
if [ ! -e /usr/share/datasets/fashion-mnist ]; then  # backdoor_zoo.py reads the Debian package's folder
  mkdir -p /usr/share/datasets && ln -s "$ROOT" /usr/share/datasets/fashion-mnist
fi
{
  nvidia-smi
  python3 -c "import torch, art, kornia; print(torch.__version__, torch.cuda.is_available(), art.__version__)"
  lscpu | grep -i "model name"
} > "$W/env.txt" 2>&1
log "environment: $(tail -2 "$W/env.txt" | tr '\n' ' ')"
(sleep "$PACK_AT" && log "watchdog: packing at $PACK_AT s" && pack) &
watchdog=$!

if [ "$SPEED_SECONDS" -gt 0 ]; then  # kornia vs batched views, before anything else loads the GPU
  timeout "$SPEED_SECONDS" python3 evaluations/augment_speed.py --device "$DEVICE" --reps 5 \
    --out "$W/augment_speed_$DEVICE.md" > "$W/augment_speed.log" 2>&1
  log "augment_speed: rc=$?"
fi

# tests with CUDA visible
xdist=()
python3 -c "import xdist" 2>/dev/null && xdist=(-n 4)
timeout "$TEST_SECONDS" python3 -m pytest -q -p no:cacheprovider "${xdist[@]}" -rfE $TEST_PATHS > "$W/tests.log" 2>&1 &
test_pid=$!

# defence curves, one process per setting (a killed one leaves its per-epoch history in its checkpoint)
for s in $CURVE_SETTINGS; do
  timeout "$CURVE_SECONDS" python3 evaluations/defence_curves.py --task fashion_mnist --root "$ROOT" \
    --n-train "$N_TRAIN" --n-val 1000 --epochs "$CURVE_EPOCHS" --pgd-steps 10 --val-pgd-steps 10 --stages 1 \
    --batch-size 256 --settings "$s" --device "$DEVICE" --checkpoint-dir "$W/ckpt_fmnist" \
    --out "$W/curves_fmnist_${s//:/_}.csv" > "$W/curves_fmnist_${s//:/_}.log" 2>&1 &
done
[ "$SMOKE" = 1 ] || [ -z "$CURVE_SETTINGS" ] || timeout "$CURVE_SECONDS" python3 evaluations/defence_curves.py --task digits --epochs $((CURVE_EPOCHS * 2)) \
  --pgd-steps 10 --val-pgd-steps 10 --batch-size 128 --settings pgd_at:random pgd_at:probe mart:random mart:probe \
  trades:random genaf:sum:probe:lamauto --device "$DEVICE" --checkpoint-dir "$W/ckpt_digits" \
  --out "$W/curves_digits.csv" > "$W/curves_digits.log" 2>&1 &
# Gen-AF's claim that it also removes backdoors (issue 16 item 5), on the shipped backdoored encoder as it was before
# this session (loaded at start, before the zoo runs replace the weights)
[ "$SMOKE" = 1 ] || [ -z "$CURVE_SETTINGS" ] || timeout "$CURVE_SECONDS" python3 evaluations/backdoor_eval.py --defences none genaf --epochs "$((CURVE_EPOCHS / 3))" \
  --sequela-tasks --device "$DEVICE" --out "$W/backdoor_genaf.csv" > "$W/backdoor_genaf.log" 2>&1 &
log "tests, curves and the backdoor run started"

# the zoo: one process per encoder (small convolutions leave the GPU mostly idle, so they share it well)
sleep "$ZOO_DELAY"
pids=()
for spec in $ZOO_SPECS; do
  set -- ${spec//:/ }
  lr=()
  [ "$2" = simsiam ] && lr=(--lr "$(python3 -c "print(0.06 * $BATCH / 256)")")  # SimSiam's linear scaling rule
  timeout $(python3 -c "print(int($ZOO_MINUTES * 60 + 240))") python3 evaluations/pretrain_zoo.py --name "$1" \
    --method "$2" --seed "$3" --epochs 200 --batch-size "$BATCH" "${lr[@]}" --minutes "$ZOO_MINUTES" \
    --root "$ROOT" --device "$DEVICE" --n-images "${ZOO_IMAGES:-0}" --augmentation "$AUGMENTATION" > "$W/pretrain_$1.log" 2>&1 &
  pids+=($!)
  [ "$1" = simclr_r18 ] && simclr_pid=$!
done
log "zoo: ${#pids[@]} runs started"

wait "$simclr_pid"
log "simclr_r18: rc=$? $(grep -a 'epoch ->' "$W/pretrain_simclr_r18.log")"
if grep -q '"sha256"' "$W/pretrain_simclr_r18.log"; then  # only on the new weights
  timeout 150 python3 evaluations/backdoor_zoo.py --device "$DEVICE" \
    $([ "$SMOKE" = 1 ] && echo "--epochs 1 --n-shadow 300") > "$W/backdoor_zoo.log" 2>&1
  log "badencoder: rc=$?"
fi
wait "${pids[@]}"
log "zoo done: $(grep -ah 'epoch ->' "$W"/pretrain_*.log | tr '\n' ';')"
if [ "$PROBE_SECONDS" -gt 0 ]; then
  timeout "$PROBE_SECONDS" python3 evaluations/probe_zoo.py --no-baseline --no-zoo-update --root "$ROOT" \
    --five-k-only --results-dir "$W/probe" > "$W/probe.log" 2>&1
  log "probe: rc=$? $(grep -a ': 5k' "$W/probe.log" | tr '\n' ';')"
fi
wait "$test_pid"
log "tests: $(tail -1 "$W/tests.log")"
for job in $(jobs -p); do [ "$job" != "$watchdog" ] && wait "$job"; done
log "curves done"
kill "$watchdog" 2>/dev/null
pack
