"""
Jobs run by ``test_distributed.py``, once in the test process (one process, no group) and once in each of two
spawned gloo processes; importable by the spawned children (``torch.multiprocessing`` pickles them by name).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from art_ssl.core import distributed
from art_ssl.models import SmallCNN


def spawn_main(
    rank: int, world: int, rendezvous: str, job_name: str, out: str, kwargs: dict, backend: str = "gloo"
) -> None:
    """Entry of each spawned process: join a ``backend`` group through ``rendezvous`` (a file), run the job, leave."""
    torch.set_num_threads(1)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    torch.distributed.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        JOBS[job_name](out, **kwargs)
    finally:
        distributed.shutdown()


SIZE = 8  # the digits' native side: the smallest real images we have, the fastest jobs


def _digits(n_train: int, n_test: int = 0):
    from art_ssl.data.digits import load_digits

    x, y = load_digits("train", size=SIZE)
    xt, yt = load_digits("test", size=SIZE)
    return x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]


def _encoder() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, widths=(8, 16), stem_stride=2)


def pretrain_job(
    out: str, method: str, n: int, batch_size: int, optimizer: str, device: str = "cpu", amp: bool = False
) -> None:
    """One epoch of ``method`` on ``n`` digits with a deterministic augmentation (the identity: the ranks' views then
    match one process's); rank 0 saves the encoder's and method's state."""
    from art_ssl.ssl import pretrain

    x = _digits(n)[0]
    kwargs = {"queue_size": 64} if method == "moco" else {}
    result = pretrain(
        _encoder(),
        x,
        method,
        nb_epochs=1,
        batch_size=batch_size,
        optimizer=optimizer,
        warmup_epochs=0,
        device_type=device,
        augmentation=nn.Identity(),
        method_kwargs=kwargs,
        amp=amp,
        verbose=False,
    )
    if distributed.is_main_process():
        torch.save({"state": result.method.state_dict(), "loss": result.history["loss"].tolist()}, out)


def trainer_job(out: str, name: str, n: int, batch_size: int, nb_epochs: int, n_test: int, beta: float = 6.0) -> None:
    """``nb_epochs`` of a defence on ``n`` digits; rank 0 saves the weights, the history and the test BA / RA."""
    from art_ssl.defences.trainer import FineTuningTrainer, GenAFTrainer, MARTTrainer, TRADESTrainer
    from art_ssl.estimators import encoder_classifier

    x, y, xt, yt = _digits(n, n_test)
    torch.manual_seed(0)
    clf = encoder_classifier(_encoder(), 10, freeze_encoder=False, input_shape=(1, SIZE, SIZE), device_type="cpu")
    common = {"nb_epochs": nb_epochs, "batch_size": batch_size, "amp": False, "verbose": False, "pgd_steps": 3}
    common |= {"validation_pgd_steps": 0, "encoder_lr": 1e-3, "head_lr": 1e-2}
    trainer = {
        "trades": lambda: TRADESTrainer(clf, beta=beta, **common),
        "mart": lambda: MARTTrainer(clf, beta=beta, **common),
        "pgd_at": lambda: FineTuningTrainer(clf, adversarial=True, **common),
        "genaf": lambda: GenAFTrainer(clf, stages=(1,), **common),
    }[name]()
    trainer.fit(x, y)
    if not distributed.is_main_process():
        return
    from art_ssl.core.pgd import pgd_linf

    model = clf.model.eval()
    xt_t, yt_t = torch.from_numpy(xt), torch.from_numpy(yt)
    with torch.no_grad():
        ba = float((model(xt_t).argmax(1) == yt_t).float().mean())
    x_adv = pgd_linf(
        lambda v: nn.functional.cross_entropy(model(v), yt_t, reduction="sum"),
        xt_t,
        eps=0.031,
        step_size=0.007,
        steps=10,
        random_start=None,
    )
    with torch.no_grad():
        ra = float((model(x_adv).argmax(1) == yt_t).float().mean())
    torch.save({"state": clf.model.state_dict(), "loss": trainer.history_["loss"].tolist(), "ba": ba, "ra": ra}, out)


def badencoder_job(out: str, n: int, batch_size: int) -> None:
    """One BadEncoder epoch on ``n`` shadow digits; rank 0 saves the backdoored encoder and the history."""
    from art_ssl.attacks.poisoning import BadEncoder
    from art_ssl.estimators import PyTorchEncoder

    x = _digits(n)[0]
    encoder = PyTorchEncoder(_encoder(), (1, SIZE, SIZE), device_type="cpu")
    attack = BadEncoder(encoder, nb_epochs=1, batch_size=batch_size, learning_rate=0.05, verbose=False)
    backdoored = attack.poison_estimator(x)
    if distributed.is_main_process():
        torch.save({"state": backdoored.model.state_dict(), "loss": attack.history_["loss"].tolist()}, out)


def distillation_job(out: str, n: int, batch_size: int, augmentation: bool = True) -> None:
    """The whole distillation defence on ``n`` digits, one epoch of each of its three runs (teacher fine-tuning,
    student warm-up, distillation), with the identity augmentation (the ranks' views then match one process's);
    rank 0 saves the teacher, the student and the history."""
    from art_ssl.defences.transformer import EncoderDistillation
    from art_ssl.estimators import PyTorchEncoder

    x = _digits(n)[0]
    encoder = PyTorchEncoder(_encoder(), (1, SIZE, SIZE), device_type="cpu")
    kwargs = {"augmentation": nn.Identity()} if augmentation else {}
    defence = EncoderDistillation(
        encoder,
        layers=("layer1", "layer2"),
        nb_epochs=1,
        batch_size=batch_size,
        teacher_epochs=1,
        warmup_epochs=1,
        amp=False,
        verbose=False,
        **kwargs,
    )
    student = defence(x)
    if distributed.is_main_process():
        assert defence.teacher_ is not None and defence.history_ is not None
        state = {f"student.{k}": v for k, v in student.model.state_dict().items()}
        state |= {f"teacher.{k}": v for k, v in defence.teacher_.state_dict().items()}
        torch.save({"state": state, "loss": defence.history_["loss"].tolist()}, out)


def zepad_job(out: str, n: int, batch_size: int, mpae_trainer: str = "genaf", head_dropout: float = 0.2) -> None:
    """ZePAD's whole training on ``n`` digits: one epoch of adversarial fine-tuning of each MPAE encoder (victim and
    auxiliary), then one epoch of each branch's head (the two MPAE branches and the BMP branch, dropout on); rank 0
    saves every branch's encoder and head and the histories."""
    from art_ssl.defences.trainer import ZePADTrainer
    from art_ssl.estimators import encoder_classifier

    x, y, _, _ = _digits(n)
    clf = encoder_classifier(_encoder(), 10, freeze_encoder=False, input_shape=(1, SIZE, SIZE), device_type="cpu")
    torch.manual_seed(1)
    auxiliary = SmallCNN(in_channels=1, widths=(8, 16), stem_stride=2)
    torch.manual_seed(2)
    bmp = SmallCNN(in_channels=1, widths=(8, 16), stem_stride=2)
    trainer = ZePADTrainer(
        clf,
        auxiliary,
        bmp_encoder=bmp,
        mpae_trainer=mpae_trainer,
        aft_epochs=1,
        head_epochs=1,
        batch_size=batch_size,
        pgd_steps=3,
        head_hidden=(16,),
        head_dropout=head_dropout,
        amp=False,
        verbose=False,
    )
    trainer.fit(x, y)
    if distributed.is_main_process():
        model = trainer.get_classifier().model
        dropouts = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0})
        result = {"state": model.state_dict(), "loss": trainer.history_["loss"].tolist(), "dropout": dropouts}
        torch.save(result, out)


def gather_bn_job(out: str) -> None:
    """The pieces alone: a global BatchNorm forward/backward, a gathered loss and a global dropout mask, on 2 ranks
    vs the full batch."""
    torch.manual_seed(0)
    x_full = torch.randn(10, 3, 4, 4, dtype=torch.float64)
    weights = torch.randn(10, 3, 4, 4, dtype=torch.float64)
    bn = nn.BatchNorm2d(3).double()
    start, stop = distributed.shard_bounds(len(x_full))
    x = x_full[start:stop].clone().requires_grad_(True)
    with distributed.global_batchnorm(bn):
        y = bn(x)
    y_all = distributed.gather_with_local_grad(y)
    torch.manual_seed(1)  # the same global random state on every rank, as the trainers' seeding gives
    drop = nn.Dropout(0.5)
    with distributed.global_dropout(drop):
        dropped = distributed.gather_with_local_grad(drop(x.detach()))
    loss = (y_all * weights).pow(2).sum()  # the same loss on every rank, from the gathered output
    loss.backward()
    distributed.sync_gradients(bn.parameters())
    grads_x = [torch.zeros(10, 3, 4, 4, dtype=torch.float64)]
    if distributed.is_distributed():
        parts = [torch.zeros_like(x.grad) for _ in range(distributed.world_size())]
        torch.distributed.all_gather(parts, x.grad)  # equal shard sizes (5 + 5)
        grads_x = [torch.cat(parts)]
    else:
        grads_x = [x.grad]
    if distributed.is_main_process():
        torch.save(
            {
                "y": y_all.detach(),
                "grad_x": grads_x[0],
                "grad_w": bn.weight.grad,
                "running_mean": bn.running_mean,
                "running_var": bn.running_var,
                "class": type(bn).__name__,
                "dropped": dropped,
                "dropout_class": type(drop).__name__,
            },
            out,
        )


def collectives_job(out: str) -> None:
    """The collectives art_ssl's helpers call (all-reduce, all-gather, broadcast) on this rank's device: rank r
    contributes ``r + 1``; rank 0 saves what came back."""
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    mine = torch.full((3,), float(distributed.rank() + 1), device=device)
    summed = mine.clone()
    dist.all_reduce(summed)
    gathered = [torch.empty_like(mine) for _ in range(distributed.world_size())]
    dist.all_gather(gathered, mine)
    sent = mine.clone()
    dist.broadcast(sent, src=0)
    if distributed.is_main_process():
        result = {"sum": summed.cpu(), "gathered": torch.stack(gathered).cpu(), "broadcast": sent.cpu()}
        torch.save({**result, "backend": dist.get_backend(), "device": str(device)}, out)


def suite_job(out: str, jobs: list[tuple[str, dict]]) -> None:
    """Several jobs in the same processes (one process start for all of them); rank 0 saves their results."""
    results = []
    for i, (name, kwargs) in enumerate(jobs):
        part = f"{out}.{i}"
        JOBS[name](part, **kwargs)
        distributed.barrier()
        if distributed.is_main_process():
            results.append(torch.load(part, weights_only=False))
    if distributed.is_main_process():
        torch.save(results, out)


JOBS = {
    "pretrain": pretrain_job,
    "trainer": trainer_job,
    "badencoder": badencoder_job,
    "distillation": distillation_job,
    "zepad": zepad_job,
    "gather_bn": gather_bn_job,
    "collectives": collectives_job,
    "suite": suite_job,
}


def run_single(job_name: str, out: str, **kwargs) -> dict:
    """The job in this process (no process group), on one thread as each spawned process (oversubscribed threads
    make a shared machine many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        JOBS[job_name](out, **kwargs)
    finally:
        torch.set_num_threads(threads)
    return torch.load(out, weights_only=False)


def run_spawned(job_name: str, tmp_dir: str, world: int = 2, backend: str = "gloo", **kwargs) -> dict:
    """The job in ``world`` spawned processes (a ``backend`` group); rank 0's saved result."""
    import torch.multiprocessing as mp

    out = os.path.join(tmp_dir, f"{job_name}-{world}.pt")
    rendezvous = os.path.join(tmp_dir, f"rendezvous-{job_name}")
    mp.start_processes(
        spawn_main, args=(world, rendezvous, job_name, out, kwargs, backend), nprocs=world, start_method="spawn"
    )
    return torch.load(out, weights_only=False)


def max_abs_difference(a: dict, b: dict) -> float:
    """Largest absolute difference between two state dicts' float tensors."""
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
