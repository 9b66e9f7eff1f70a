"""
Data-parallel training (:mod:`art_ssl.core.distributed`): two gloo processes on the CPU against one process, on the
same global batches. All two-process jobs run in one spawn (module fixture: one process start, ~10-30 s).

Tolerances, and why they are not zero (measured differences, printed by ``pytest -s``, in brackets):
- the pieces alone (global BatchNorm forward/backward, gathered loss) in float64: 1e-12, rounding only;
- SimCLR pre-training with SGD, one epoch: 1e-5 on every weight (1.2e-7): the all-reduce sums the two ranks'
  gradients in another order than one backward over the whole batch, and the global BatchNorm statistics are sums of
  per-rank sums (float32 rounding, ~1e-7 per step); SGD passes it on unamplified, so a wrong gradient scale (a mean
  instead of the sum: 2x) fails;
- BYOL and Barlow Twins with SGD: 1e-5 (1.2e-7, 1.4e-6). SimSiam with SGD at its lr 0.06: 5e-3 (9.9e-4, on a
  BatchNorm running variance): one process alone moves that much between one and two threads (9.9e-4), its
  normalised predictor output amplifies rounding;
- MoCo, PGD-AT and Gen-AF use Adam, whose steps are ``lr * m / (sqrt(v) + eps)``: a gradient component at the
  rounding level can get a step of the order of ``lr``, so the bound is 1e-4 (MoCo 1.2e-6, PGD-AT 7.7e-7, Gen-AF
  1.7e-7), a hundredth of the learning rates (1e-3 / 1e-2) that a wrong shard, a missing gradient sum or other random
  starts move every weight by;
- MART (6.7e-8), distillation (1.3e-6: teacher fine-tuning, student warm-up and distillation, three Adam runs in
  one job) and ZePAD (1.2e-7: both MPAE fine-tunings and the three heads) use Adam too: the same 1e-4. Without the
  global dropout mask ZePAD's heads differed by 2e-2, with the distillation share unweighted the student by 2.0e-3,
  without the gradient sum MART by 3.9e-2 (``tools/mutate.py --only ddp_...``: all killed); the
  distillation loss is compared at 1e-5 (3e-7 measured), where a logged per-rank share (39 vs 70) fails;
- the global dropout mask alone (float64, p = 0.5): 1e-12, the mask is the single process's, bit for bit;
- TRADES, 3 epochs on 256 digits: BA and RA on 300 test digits within 6 images (see the test).

The last three jobs add ~4-6 s to the fixture (spawned part 24-25 s -> 28-29 s, ``OMP_NUM_THREADS=1 PYTHONPATH=.
python tools/distributed_suite_time.py --before 10``).
"""

from __future__ import annotations

import pytest
import torch

from tests.core import distributed_jobs as jobs

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

JOBS = [
    ("gather_bn", {}),
    ("pretrain", {"method": "simclr", "n": 100, "batch_size": 32, "optimizer": "sgd"}),
    ("pretrain", {"method": "moco", "n": 66, "batch_size": 33, "optimizer": "adam"}),  # odd: shards of 17 + 16
    ("trainer", {"name": "pgd_at", "n": 100, "batch_size": 32, "nb_epochs": 1, "n_test": 0}),  # last batch 4
    ("trainer", {"name": "trades", "n": 256, "batch_size": 32, "nb_epochs": 3, "n_test": 300, "beta": 1.0}),
    ("trainer", {"name": "genaf", "n": 64, "batch_size": 32, "nb_epochs": 1, "n_test": 0}),
    ("pretrain", {"method": "byol", "n": 64, "batch_size": 32, "optimizer": "sgd"}),
    ("pretrain", {"method": "barlow_twins", "n": 64, "batch_size": 32, "optimizer": "sgd"}),
    ("pretrain", {"method": "simsiam", "n": 64, "batch_size": 32, "optimizer": "sgd"}),
    ("badencoder", {"n": 70, "batch_size": 32}),  # last batch 6 -> 3 + 3
    ("trainer", {"name": "mart", "n": 70, "batch_size": 32, "nb_epochs": 1, "n_test": 0}),  # last batch 6
    ("distillation", {"n": 64, "batch_size": 32}),
    ("zepad", {"n": 64, "batch_size": 32}),
]


@pytest.fixture(scope="module")
def two_and_one(tmp_path_factory):
    """Every job's result with two processes and with one."""
    folder = tmp_path_factory.mktemp("ddp")
    two = jobs.run_spawned("suite", str(folder), world=2, jobs=JOBS)
    one = [jobs.run_single(name, str(folder / f"one-{i}.pt"), **kwargs) for i, (name, kwargs) in enumerate(JOBS)]
    return two, one


def test_global_batchnorm_and_gather_match_the_full_batch(two_and_one):
    two, one = (r[0] for r in two_and_one)
    assert two["class"] == "BatchNorm2d"  # the layer's class is restored after training
    assert two["dropout_class"] == "Dropout"
    for key in ("y", "grad_x", "grad_w", "running_mean", "running_var", "dropped"):
        assert torch.allclose(two[key], one[key], rtol=0, atol=1e-12), key
    assert 0.3 < float((one["dropped"] == 0).double().mean()) < 0.7  # p = 0.5: units were dropped
    assert float(one["grad_x"].abs().max()) > 1e-3  # a real gradient was compared


@pytest.mark.parametrize(
    "index, atol",
    [(1, 1e-5), (2, 1e-4), (6, 1e-5), (7, 1e-5), (8, 5e-3)],
    ids=["simclr-sgd", "moco-adam", "byol-sgd", "barlow-twins-sgd", "simsiam-sgd"],
)
def test_pretraining_on_two_processes_equals_one(two_and_one, index, atol):
    two, one = (r[index] for r in two_and_one)
    rel = 1e-5 if JOBS[index][1]["method"] != "simsiam" else 5e-3
    assert two["loss"] == pytest.approx(one["loss"], rel=rel)  # the loss over the global batch, gathered
    print(f"{JOBS[index][1]['method']}: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    assert jobs.max_abs_difference(two["state"], one["state"]) < atol  # MoCo: its key queue too


def test_adversarial_training_on_two_processes_equals_one(two_and_one):
    two, one = (r[3] for r in two_and_one)
    print(f"PGD-AT: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-4


def test_trades_on_two_processes_reaches_the_same_ba_and_ra(two_and_one):
    two, one = (r[4] for r in two_and_one)
    print(
        f"TRADES digits BA/RA: 1 process {one['ba']:.4f}/{one['ra']:.4f}, 2 processes {two['ba']:.4f}/{two['ra']:.4f}"
    )
    assert one["ba"] > 0.3  # learnt something (chance: 0.1), so equal accuracies mean something
    # 3 epochs of Adam let float32 rounding move a few borderline test images: the one-process job itself gave BA
    # 0.5233 on one thread and 0.5167 on two (2 of 300 images); 2 processes gave 0.5167. Bound: 6 images.
    assert two["ba"] == pytest.approx(one["ba"], abs=6 / 300)
    assert two["ra"] == pytest.approx(one["ra"], abs=6 / 300)


def test_genaf_on_two_processes_equals_one_with_the_graph_over_the_global_batch(two_and_one):
    two, one = (r[5] for r in two_and_one)
    print(f"Gen-AF: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    # L_gr is built from the all-gathered batch (pairs across ranks included): the official "sum" reduction keeps
    # its scale, which a per-rank graph would divide by the number of processes squared
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-4


def test_badencoder_on_two_processes_equals_one(two_and_one):
    two, one = (r[9] for r in two_and_one)
    print(f"BadEncoder: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-5  # SGD, as the pre-training jobs


def test_mart_on_two_processes_equals_one(two_and_one):
    two, one = (r[10] for r in two_and_one)
    print(f"MART: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-4  # Adam, as PGD-AT


def test_distillation_on_two_processes_equals_one(two_and_one):
    """Teacher fine-tuning, student warm-up and distillation (SimCLR negatives gathered, the distillation mean as
    each rank's share): the teacher and the student equal one process's, and the logged loss is the global one."""
    two, one = (r[11] for r in two_and_one)
    print(f"Distillation: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)  # distillation term of the global batch, not a share
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-4  # Adam
    assert {k.split(".")[0] for k in two["state"]} == {"student", "teacher"}


def test_zepad_on_two_processes_equals_one(two_and_one):
    """ZePAD's adversarial fine-tuning of both MPAE encoders and the heads of all three branches (dropout 0.2: each
    rank applies its rows of the global batch's mask): every branch's encoder and head equal one process's."""
    two, one = (r[12] for r in two_and_one)
    print(f"ZePAD: max |w2 - w1| = {jobs.max_abs_difference(two['state'], one['state']):.3g}")
    assert two["dropout"] == ["Dropout"]  # the heads drop units, and their layers' class is restored
    branches = {".".join(k.split(".")[: 3 if k.startswith("mpae") else 2]) for k in two["state"]}
    assert branches == {f"{b}.{part}" for b in ("mpae.0", "mpae.1", "bmp") for part in ("encoder", "head")}
    assert len(two["loss"]) == len(one["loss"]) == 5  # two fine-tunings, three heads
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-4  # Adam


def test_batch_shards_follow_one_global_order():
    from art_ssl.core.distributed import shard_bounds

    assert [shard_bounds(33, 2, r) for r in range(2)] == [(0, 17), (17, 33)]
    assert [shard_bounds(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]


def test_outside_a_group_the_helpers_change_nothing():
    from art_ssl.core import distributed

    x = torch.randn(4, 3, requires_grad=True)
    assert distributed.gather_with_local_grad(x) is x
    shards = distributed.BatchShards(10, 4)
    batch = torch.arange(4)
    assert shards.local(batch) is batch and shards.weight == 1.0 and shards.rows is None
    assert distributed.world_size() == 1 and distributed.is_main_process()
    assert distributed.init_from_env("cpu") is None  # not launched by torchrun
    with pytest.raises(ValueError, match="device_type"):
        distributed.init_from_env("tpu")


@pytest.mark.skipif(
    not torch.cuda.is_available() or not torch.distributed.is_nccl_available(), reason="NCCL needs a CUDA device"
)
def test_nccl_group_of_one_gpu_equals_no_group(tmp_path):  # pragma: no cover - runs on a machine with a GPU
    """The NCCL code path (group start, weight broadcast, gradient all-reduce, global BatchNorm's all-gathers) on the
    one GPU a machine may have: the collectives return what they must on CUDA tensors, and a group of one trains
    exactly as no group, up to cuDNN's non-determinism. NCCL refuses two ranks on one device, so the two-rank check
    needs two GPUs (below)."""
    job = ("pretrain", {**JOBS[1][1], "device": "gpu"})
    collectives, grouped = jobs.run_spawned(
        "suite", str(tmp_path), world=1, jobs=[("collectives", {}), job], backend="nccl"
    )
    assert collectives["backend"] == "nccl" and collectives["device"].startswith("cuda")
    assert collectives["sum"].tolist() == [1.0] * 3 and collectives["broadcast"].tolist() == [1.0] * 3
    assert collectives["gathered"].tolist() == [[1.0] * 3]
    alone = jobs.run_single(job[0], str(tmp_path / "one.pt"), **job[1])
    assert grouped["loss"] == pytest.approx(alone["loss"], rel=1e-4)
    assert jobs.max_abs_difference(grouped["state"], alone["state"]) < 1e-4


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL data-parallel needs two CUDA devices")
def test_nccl_on_two_gpus_equals_one_gpu(tmp_path):  # pragma: no cover - runs on a machine with two GPUs
    job = ("pretrain", {**JOBS[1][1], "device": "gpu"})
    two = jobs.run_spawned("suite", str(tmp_path), world=2, jobs=[job], backend="nccl")[0]
    one = jobs.run_single(job[0], str(tmp_path / "one.pt"), **job[1])
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert jobs.max_abs_difference(two["state"], one["state"]) < 1e-4  # cuDNN kernels are not bitwise reproducible
