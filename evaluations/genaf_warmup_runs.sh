#!/usr/bin/env bash
# Gen-AF's stage-1 budget warm-up and head on digits (issue 16): the runs behind
# evaluations/results/genaf_curves_digits_warmup.*, genaf_curves_digits_levers.* and genaf_curves_fmnist_warmup.*,
# in the order they ran (CPU, one thread each, about 1-5 minutes a run). Each setting is one trainer
# (evaluations/defence_curves.py: `genaf:<gr_reduction>:<head_init>[:lamL][:balB][:rampF]`, `genaf_l0`: lambda 0);
# a finished (task, encoder, setting, seed, stages) is skipped, so a rerun only renders the markdown.
#   bash evaluations/genaf_warmup_runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PYTHONPATH=${PYTHONPATH:-$PWD}
R=evaluations/results
D=(--task digits --n-train 1257 --n-val 300 --epochs 10 --threads 1)
F=(--task fashion_mnist_subset --n-train 2000 --n-val 300 --epochs 3 --threads 1)
W=$R/genaf_curves_digits_warmup.csv
L=$R/genaf_curves_digits_levers.csv
M=$R/genaf_curves_fmnist_warmup.csv
curves() { python evaluations/defence_curves.py "$@"; }
PROBE=genaf:sum:probe:lamauto
RANDOM_HEAD=genaf:sum:random:lamauto

# warm-up 0.8 against none (the defaults before it: probe head, lambda auto), both zoo encoders
for enc in simclr_r18 barlow_twins_r18; do
    curves "${D[@]}" --encoder "$enc" --settings $PROBE:ramp0.8 $PROBE:ramp0 --out $W
done
# what else moves it on simclr_r18: lambda 0 (the CE term alone), a 10x smaller L_gr balance
curves "${D[@]}" --encoder simclr_r18 --settings genaf_l0:sum:probe:ramp0.8 $PROBE:bal0.1:ramp0.8 \
    genaf_l0:sum:probe:ramp0 --out $L
curves "${F[@]}" --encoder simclr_r18 --settings $PROBE:ramp0 $PROBE:ramp0.8 --out $M
for enc in simclr_r18 barlow_twins_r18; do
    curves "${D[@]}" --encoder "$enc" --settings $PROBE:ramp0.5 --out $W
done
# both stages, as the benchmark (stage 2: 2 epochs, sensitivity on 1,000 images, 3 ascent epochs)
curves "${D[@]}" --encoder simclr_r18 --stages 1 2 --sensitivity-samples 1000 --settings $PROBE:ramp0.8 $PROBE:ramp0 \
    --out $W
# the official random head with the warm-up
for enc in simclr_r18 barlow_twins_r18; do
    curves "${D[@]}" --encoder "$enc" --settings $RANDOM_HEAD:ramp0.8 --out $L
done
curves "${F[@]}" --encoder simclr_r18 --settings $RANDOM_HEAD:ramp0.8 --out $M
curves "${D[@]}" --encoder simclr_r18 --seed 1 --settings $PROBE:ramp0.8 --out $W
curves "${D[@]}" --encoder simclr_r18 --seed 1 --settings $RANDOM_HEAD:ramp0.8 --out $L
curves "${F[@]}" --encoder simclr_r18 --settings $RANDOM_HEAD:ramp0 --out $M
for enc in simclr_r18 barlow_twins_r18; do
    curves "${D[@]}" --encoder "$enc" --settings $RANDOM_HEAD:ramp0 --out $L
done
curves "${F[@]}" --encoder barlow_twins_r18 --settings $PROBE:ramp0 $RANDOM_HEAD:ramp0.8 --out $M
curves "${D[@]}" --encoder barlow_twins_r18 --seed 1 --settings $RANDOM_HEAD:ramp0.8 --out $L
for enc in simclr_r18 barlow_twins_r18; do
    curves "${D[@]}" --encoder "$enc" --stages 1 2 --sensitivity-samples 1000 --settings $RANDOM_HEAD:ramp0.8 --out $L
done

# the markdown tables (every epoch), each with its caption
COMMON="GenAFTrainer, lambda_gr='auto' (lamauto), L_gr summed (sum), PGD-5 at Gen-AF's eps 0.03 / step 0.007 in \
training; val_ba / val_ra: validation BA and white-box PGD-5 accuracy (uniform start, eps 0.03) on 300 test images \
after each epoch; rampF: eps_warmup_fraction=F; probe / random: head_init; stages 1: stage 1 only, 1+2: both \
(stage 2: 2 epochs, rows with stage 2). Made by \`bash evaluations/genaf_warmup_runs.sh\` (its lines, in order)."
curves "${D[@]}" --settings --out $W --md ${W%.csv}.md --caption "Gen-AF on scikit-learn digits (all 1,257 \
training images, batch 256: 5 steps an epoch, 10 epochs, 64x64, zoo encoders + the papers' MLP head, seed 0 unless \
the seed column says otherwise): the stage-1 budget warm-up with the clean-probe head (the defaults before issue 16's \
warm-up). $COMMON"
curves "${D[@]}" --settings --out $L --md ${L%.csv}.md --caption "Gen-AF on digits, the levers beside the warm-up \
(same protocol as genaf_curves_digits_warmup.md): genaf_l0 (lambda_gr=0, the adversarial CE alone), bal0.1 \
(gr_balance=0.1), and the random head (head_init='random', the official one) with and without the warm-up; \
random + ramp0.8 is the new default. $COMMON"
curves "${F[@]}" --settings --out $M --md ${M%.csv}.md --caption "Gen-AF on Fashion-MNIST (2,000 training images, \
3 epochs: 24 steps; 64x64), the check that the new defaults (random head, ramp0.8) are not worse there than the \
previous ones (probe head, ramp0). $COMMON"
