"""
Markdown table from ``backdoor_eval.py``'s CSV, written next to it:

    python evaluations/backdoor_tables.py             # -> evaluations/results/backdoor_64.md
"""

from __future__ import annotations

import json

import pandas as pd
from attack_tables import results_dir, write

from art_ssl.zoo import encoder_info

ORDER = ["none", "finetune", "super_finetune", "distillation", "genaf"]


def main() -> None:
    results = results_dir(__doc__)
    frame = pd.read_csv(results / "backdoor_64.csv", dtype={"sequela_epochs": str})
    frame["variant"] = frame["variant"].fillna("")
    frame["order"] = frame["defence"].map({d: i for i, d in enumerate(ORDER)})
    frame["CA_loss"] = frame["CA"] - frame["BA"]
    cols = [
        "task",
        "defence",
        "variant",
        "target",
        "CA",
        "BA",
        "CA_loss",
        "ASR",
        "ASR_all",
        "ASR_clean_encoder",
        "sequela_epochs",
        "train_seconds",
    ]
    frame["task_order"] = frame["task"].map({"fashion_mnist": 0, "digits": 1})
    table = frame.sort_values(["task_order", "order"], kind="stable")[[c for c in cols if c in frame.columns]]
    info = encoder_info("simclr_r18_badencoder")
    targets = "; ".join(
        f"{t['task']} class {t['target']} (white {t['trigger']['size']} px square, "
        f"{t['trigger']['corner'].replace('_', '-')})"
        for t in info["backdoor_targets"]
    )
    write(
        results / "backdoor_64.md",
        "Backdoored encoder `simclr_r18_badencoder` (BadEncoder on simclr_r18, "
        f"{info['epochs']} epochs on {info['data'].split(':')[1].strip()}; targets: {targets}) downstream, 64x64. "
        "CA: clean simclr_r18 with the same head training; BA: the row's model; ASR: triggered test images of the "
        "other classes classified as the target (ASR_all: of all classes); ASR_clean_encoder: the trigger on the "
        "clean encoder's model. Heads 512-512-C on the L2-normalised embeddings of the frozen encoder, as "
        "BadEncoder's downstream classifiers (10 epochs at 4,000 images, the same number of steps on digits; "
        "`raw-feature head`: on raw embeddings); every defence starts from the `none` model; Fashion-MNIST "
        "4,000 / 2,000 images, 3 defence epochs; digits 1,257 / 540, 10 epochs. "
        "Distillation: 5% of the Fashion-MNIST training images, unlabelled. sequela_epochs: poisoned fine-tuning "
        "epochs (10% of the training images triggered and relabelled) until ASR >= 0.9 again (Fashion-MNIST). "
        "train_seconds: CPU, 2 threads, shared with other jobs; the first distillation row includes the teacher "
        "fine-tuning and the student warm-up that the other rows reuse. Command: "
        "`python evaluations/backdoor_eval.py`",
        table,
    )
    print(json.dumps({"rows": len(table)}))


if __name__ == "__main__":
    main()
