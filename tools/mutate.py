"""
Mutation check (`make mutate`): hand-written mutants of art_ssl's core algorithms, each applied to a temporary copy of
the tree, against the tests that should catch it. A mutant is *killed* when those tests fail; a *survivor* means no
test checks that piece of the algorithm. The unmutated copy runs first (it must pass, or the count means nothing).

Each mutant names an exact snippet of the current code; when the code moves on, the script stops with "stale
mutant" instead of silently testing nothing, and the snippet is updated here.

    python tools/mutate.py                 # every mutant against its own test files
    python tools/mutate.py --full          # every mutant against the whole suite (slow)
    python tools/mutate.py --only trades_kl_reversed pap_sign
    python tools/mutate.py --jobs 4         # four test runs at once
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


# By default each mutant meets the fast tests written to catch it (hand-computed values, tiny models); --full runs
# the whole suite instead (the real-data tests too: much slower).
BEHAVIOUR = "tests/defences/test_trades_mart_behaviour.py::"
ROBUST = (
    "tests/defences/test_core_robust.py",
    BEHAVIOUR + "test_trades_loss_is_ce_plus_beta_kl_clean_to_adv_at_the_kl_maximiser",
    BEHAVIOUR + "test_mart_loss_is_boosted_ce_plus_weighted_kl_at_the_ce_maximiser",
)
PREPROCESSING = ("tests/test_preprocessing.py",)
SSL = ("tests/ssl/test_ssl_losses_by_hand.py",)
DDP = "tests/core/test_distributed.py::"
FUSION = ("tests/defences/test_fusion_k.py",)
MUTANTS = [
    Mutant(
        "trades_kl_reversed",
        "art_ssl/defences/trainer/trades.py",
        "self.beta * trades_kl(logits_adv, logits_clean)",
        "self.beta * trades_kl(logits_clean, logits_adv)",
        ROBUST,
        "TRADES' outer KL(adv || clean) instead of KL(clean || adv)",
    ),
    Mutant(
        "trades_kl_core_reversed",
        "art_ssl/core/robust_losses.py",
        "F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1)",
        "F.kl_div(F.log_softmax(logits_clean, dim=1), F.softmax(logits_adv, dim=1)",
        ROBUST,
        "core trades_kl computes KL(adv || clean)",
    ),
    Mutant(
        "trades_inner_ce",
        "art_ssl/defences/trainer/trades.py",
        'x_adv = self._pgd(lambda x_adv: trades_kl(self._logits(x_adv), clean_target, reduction="sum"), x)',
        "x_adv = self._ce_pgd(x, y)",
        ROBUST,
        "TRADES' inner maximisation on the cross-entropy instead of the KL",
    ),
    Mutant(
        "mart_weight_dropped",
        "art_ssl/core/robust_losses.py",
        "(kl * (1.0000001 - true_prob)).mean()",
        "kl.mean()",
        ROBUST,
        "MART without the (1 - p_y) misclassification weight",
    ),
    Mutant(
        "mart_args_swapped",
        "art_ssl/defences/trainer/mart.py",
        "mart_loss(self._logits(x_adv), self._logits(x), y, self.beta)",
        "mart_loss(self._logits(x), self._logits(x_adv), y, self.beta)",
        ROBUST,
        "MART's boosted CE on the clean logits",
    ),
    Mutant(
        "lgr_mean",
        "art_ssl/core/robust_losses.py",
        "total = (kl + kl_complement).sum()",
        "total = (kl + kl_complement).mean()",
        ROBUST,
        "Gen-AF's L_gr averaged instead of summed",
    ),
    Mutant(
        "pap_sign",
        "art_ssl/attacks/evasion/pap.py",
        "                return energy(x_adv)",
        "                return -energy(x_adv)",
        ("tests/attacks/test_pap_objective.py",),
        "PAP lowers the activation energy instead of lifting it",
    ),
    Mutant(
        "preprocessing_skipped",
        "art_ssl/core/forward.py",
        "        return pixel_forward(self.classifier, x, model=self.model)",
        "        return self.model(x)",
        PREPROCESSING,
        "PreprocessedModel (torchattacks, AutoAttack) skips the classifier's preprocessing",
    ),
    Mutant(
        "trainer_preprocessing_skipped",
        "art_ssl/defences/trainer/base.py",
        "        return pixel_forward(self._classifier, x)",
        "        return self.model(x)",
        PREPROCESSING,
        "trainers feed raw pixels to a model that expects normalised ones",
    ),
    Mutant(
        "core_preprocessing_skipped",
        "art_ssl/core/forward.py",
        "    return estimator._apply_preprocessing(x, y=None, fit=False, no_grad=not differentiable)[0]",
        "    return x",
        PREPROCESSING,
        "the one pixel-space forward of art_ssl (attacks, trainers, detector, AutoAttack) skips the preprocessing",
    ),
    Mutant(
        "federal_k_ignored",
        "art_ssl/core/fusion.py",
        "scores = m * torch.exp(k * (m - 0.5))",
        "scores = m * torch.exp(3.0 * (m - 0.5))",
        FUSION,
        "ZePAD's federal fusion ignores its sharpness k",
    ),
    Mutant(
        "federal_k_not_passed",
        "art_ssl/defences/zepad_model.py",
        "return fuse_logits(self.branch_logits(x), self.fusion, self.k)",
        "return fuse_logits(self.branch_logits(x), self.fusion)",
        FUSION,
        "ZePADModel drops its k (always the default 3)",
    ),
    Mutant(
        "simsiam_one_sided",
        "art_ssl/ssl/methods.py",
        "return (_neg_cosine(p1, z2) + _neg_cosine(p2, z1)) / 2",
        "return _neg_cosine(p1, z2)",
        SSL,
        "SimSiam's loss not symmetric",
    ),
    Mutant(
        "simsiam_no_stop_gradient",
        "art_ssl/ssl/methods.py",
        "return negative_cosine(p, z.detach()).mean()",
        "return negative_cosine(p, z).mean()",
        SSL,
        "SimSiam/BYOL without the stop-gradient on the target",
    ),
    Mutant(
        "barlow_not_batch_averaged",
        "art_ssl/ssl/methods.py",
        "c = z1.t() @ z2 / z1.shape[0]",
        "c = z1.t() @ z2",
        SSL,
        "Barlow Twins' cross-correlation not divided by the batch size",
    ),
    Mutant(
        "ddp_trainer_gradients_not_summed",
        "art_ssl/defences/trainer/base.py",
        "distributed.sync_gradients(self.model.parameters())  # data-parallel: sum of the shares",
        "pass",
        (DDP + "test_mart_on_two_processes_equals_one",),
        "data-parallel trainers step on their own rank's gradient",
    ),
    Mutant(
        "ddp_dropout_per_rank",
        "art_ssl/core/distributed.py",
        "if not (self.training and self.p > 0 and is_distributed()):",
        "if True:",
        (DDP + "test_zepad_on_two_processes_equals_one",),
        "data-parallel dropout: every rank draws its own rows' masks from the same stream",
    ),
    Mutant(
        "ddp_distillation_share_unweighted",
        "art_ssl/defences/transformer/distillation.py",
        "share = local_mean * (n_local / n_global)",
        "share = local_mean",
        (DDP + "test_distillation_on_two_processes_equals_one",),
        "data-parallel distillation: each rank's distillation mean not weighted by its share of the batch",
    ),
    Mutant(
        "ddp_distillation_logs_a_share",
        "art_ssl/defences/transformer/distillation.py",
        "return share + (total / n_global - float(share.detach()))",
        "return share",
        (DDP + "test_distillation_on_two_processes_equals_one",),
        "data-parallel distillation logs its rank's share of the distillation term as the loss",
    ),
]


def copy_tree(dest: Path) -> None:
    """The files git tracks or would track (untracked, not ignored): the working tree as the next commit sees it."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[int, float, str]:
    """pytest's exit code (-1: timed out), the seconds it took and the tail of its output."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = done.returncode, (done.stdout + done.stderr)[-3000:]
    except subprocess.TimeoutExpired:
        rc, tail = -1, "timed out"
    return rc, time.perf_counter() - start, tail


def run_mutant(mutant: Mutant | None, tests: list[str], timeout: float) -> tuple[int, float, str]:
    """Tests of a fresh copy of the tree, with ``mutant`` applied (``None``: unmutated)."""
    with tempfile.TemporaryDirectory(prefix="art_ssl_mutate_") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if mutant is not None:
            target = tree / mutant.path
            target.write_text(target.read_text().replace(mutant.old, mutant.new))
        return run_tests(tree, tests, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="Run these mutants only.")
    parser.add_argument("--full", action="store_true", help="Run the whole suite against each mutant.")
    parser.add_argument("--jobs", type=int, default=1, help="Test runs at once, each in its own copy of the tree.")
    parser.add_argument("--timeout", type=float, default=1200.0, help="Seconds per test run (a timeout is a survivor).")
    parser.add_argument("--list", action="store_true", help="List the mutants and exit.")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    mutants = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            parser.error(f"unknown mutants {unknown}; choose from {[m.name for m in MUTANTS]}")
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:30s} {m.path}: {m.what}")
        return 0
    stale = [m.name for m in mutants if (ROOT / m.path).read_text().count(m.old) != 1]
    if stale:
        print(f"stale mutants (their snippet is not exactly once in the code): {stale}", file=sys.stderr)
        return 2
    every_test = sorted({t for m in mutants for t in m.tests})

    def tests_of(mutant: Mutant | None) -> list[str]:
        return ["tests"] if args.full else every_test if mutant is None else list(mutant.tests)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        baseline = pool.submit(run_mutant, None, tests_of(None), args.timeout)
        futures = [pool.submit(run_mutant, m, tests_of(m), args.timeout) for m in mutants]
        rc, seconds, tail = baseline.result()
        if rc != 0:
            for future in futures:
                future.cancel()
            print(f"{tail}\nthe unmutated tree fails its tests (pytest exit {rc}): fix that first", file=sys.stderr)
            return 2
        print(f"unmutated tree: tests pass ({seconds:.0f} s)")
        print("| mutant | file | result | seconds | what it breaks |\n|---|---|---|---|---|")
        killed = 0
        for m, future in zip(mutants, futures, strict=True):
            rc, seconds, _ = future.result()
            # pytest exits 1 when a test fails; 2-4 (collection/usage errors) also mean the mutant broke the tests
            dead = rc not in (0, 5, -1)
            killed += dead
            result = "killed" if dead else "timeout" if rc == -1 else "SURVIVED"
            print(f"| {m.name} | {m.path} | {result} | {seconds:.0f} | {m.what} |", flush=True)
    print(f"\n{killed}/{len(mutants)} mutants killed")
    return 0 if killed == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
