"""
The encoders of the backdoor evaluation under a linear probe (L-BFGS logistic regression on L2-normalised frozen
embeddings, the ``art_ssl.evaluation.fit_linear_probe`` of the zoo's table): a measure of each encoder's utility
and backdoor that does not depend on how long an MLP head is trained. Encoders: the clean base, the backdoored zoo
encoder, and every distilled student that ``backdoor_eval.py`` saved in ``--checkpoints`` (default
``evaluations/checkpoints``).

    python evaluations/backdoor_probe.py          # -> evaluations/results/backdoor_probe_64.csv / .md
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from attack_tables import RESULTS, write
from backdoor_eval import CHECKPOINTS
from safetensors.torch import load_file

from art_ssl.data import load_task
from art_ssl.evaluation import fit_linear_probe
from art_ssl.metrics import attack_success_rate, benign_accuracy
from art_ssl.zoo import backdoor_targets, encoder_info, load_encoder


def normalised(encoder_model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        feats = torch.cat([encoder_model(torch.from_numpy(x[i : i + 512])) for i in range(0, len(x), 512)])
    return torch.nn.functional.normalize(feats, dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="simclr_r18_badencoder")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", default=CHECKPOINTS, help="where backdoor_eval.py saved the students")
    parser.add_argument("--results-dir", default=str(RESULTS))
    args = parser.parse_args()
    results = Path(args.results_dir)
    backdoored = load_encoder(args.encoder, "cpu")
    models = {
        "clean (" + encoder_info(args.encoder)["base_encoder"] + ")": load_encoder(
            encoder_info(args.encoder)["base_encoder"], "cpu"
        ).model,
        "backdoored": backdoored.model,
    }
    for path in sorted(Path(args.checkpoints).glob(f"distill_{args.encoder}_*.safetensors")):
        model = copy.deepcopy(backdoored.model)
        model.load_state_dict(load_file(str(path)))
        models["distilled " + path.stem.removeprefix(f"distill_{args.encoder}_")] = model.eval()
    rows = []
    for target in backdoor_targets(args.encoder):
        task = load_task(
            target["task"], size=64, n_train=args.n_train or None, n_test=args.n_test or None, seed=args.seed
        )
        for name, model in models.items():
            model.eval()
            head = fit_linear_probe(normalised(model, task.x_train), task.y_train, nb_classes=task.nb_classes)
            with torch.no_grad():
                pred = head(torch.from_numpy(normalised(model, task.x_test))).argmax(1).numpy()
                trig = head(torch.from_numpy(normalised(model, target["trigger"].apply(task.x_test)))).argmax(1)
            rows.append(
                {
                    "task": task.name,
                    "encoder": name,
                    "accuracy": benign_accuracy(pred, task.y_test),
                    "ASR": attack_success_rate(trig.numpy(), target["target"], task.y_test, exclude_target_class=True),
                }
            )
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(results / "backdoor_probe_64.csv", index=False)
    write(
        results / "backdoor_probe_64.md",
        f"Linear probe (L-BFGS, L2-normalised frozen embeddings) of the backdoor "
        f"evaluation's encoders, 64x64; Fashion-MNIST {args.n_train} / {args.n_test} images, digits 1,257 / 540. "
        "ASR: triggered test images of the other classes classified as the target. Distilled students: "
        "teacher / student / loss / epochs (e) / teacher epochs (t) / warm-up epochs (w) / clean fraction (f). "
        "Command: `python evaluations/backdoor_probe.py`",
        frame,
    )


if __name__ == "__main__":
    main()
