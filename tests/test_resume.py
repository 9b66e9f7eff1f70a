"""Resumable training (``checkpoint_dir``): a run killed with SIGKILL mid-epoch and started again ends exactly where
an uninterrupted run ends (weights, history), for a defence trainer and for SSL pre-training."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from art_ssl.ssl import pretrain
from tests import resume_setup as setup
from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[1]


def _run_and_kill(tmp_path: Path, body: str) -> None:
    """Run ``body`` (after ``from tests.resume_setup import *``) in a child process; it must create ``marker`` once
    it is in its second epoch (after the first checkpoint) and then hang; kill it with SIGKILL there."""
    marker = tmp_path / "in_epoch_2"
    script = tmp_path / "child.py"
    body = textwrap.dedent(body).format(marker=str(marker), ckpt=str(tmp_path / "ckpt"))
    script.write_text("from tests.resume_setup import *\n" + body)
    env = child_env()
    child = subprocess.Popen([sys.executable, str(script)], env=env, cwd=ROOT)
    try:
        deadline = time.time() + 240
        while not marker.exists():
            assert child.poll() is None, "the child process ended before it could be killed"
            assert time.time() < deadline, "the child process never reached its second epoch"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def test_trainer_resumes_after_kill_as_if_uninterrupted(tmp_path):
    x, y = setup.data()
    reference = setup.trainer()
    reference.fit(x, y)

    _run_and_kill(
        tmp_path,
        """
        import pathlib, time
        def hang(self, step, epoch, nb_epochs, optimizers):
            if epoch == 2:
                pathlib.Path({marker!r}).touch()
                time.sleep(600)
        TRADESTrainer._before_step = hang  # the same trainer, paused where the kill lands
        trainer().fit(*data(), checkpoint_dir={ckpt!r})
    """,
    )
    files = list((tmp_path / "ckpt").iterdir())
    assert [f.name for f in files] == ["TRADESTrainer-stage-main.pt"]
    assert torch.load(files[0], weights_only=True)["epoch"] == 1  # killed in epoch 2: only epoch 1 saved

    resumed = setup.trainer()
    resumed.fit(x, y, checkpoint_dir=tmp_path / "ckpt")
    for a, b in zip(
        reference.get_classifier().model.state_dict().values(),
        resumed.get_classifier().model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(reference.history_["loss"], resumed.history_["loss"])
    assert len(resumed.history_) == 3

    fresh = setup.trainer()  # a finished checkpoint: nothing is trained again, same result
    fresh.fit(x, y, checkpoint_dir=tmp_path / "ckpt")
    np.testing.assert_array_equal(fresh.history_["loss"], reference.history_["loss"])


def test_pretrain_resumes_after_kill_as_if_uninterrupted(tmp_path):
    x, _ = setup.data()
    reference = pretrain(setup.encoder(), x, **setup.PRETRAIN)

    _run_and_kill(
        tmp_path,
        """
        import pathlib, time
        from art_ssl.ssl import pretrain
        def hang(epoch, encoder, history):
            if epoch == 1:
                pathlib.Path({marker!r}).touch()
                time.sleep(600)
        pretrain(encoder(), data()[0], checkpoint_dir={ckpt!r}, epoch_callback=hang, **PRETRAIN)
    """,
    )
    assert torch.load(tmp_path / "ckpt" / "pretrain.pt", weights_only=True)["epoch"] == 1

    resumed = pretrain(setup.encoder(), x, checkpoint_dir=tmp_path / "ckpt", **setup.PRETRAIN)
    for a, b in zip(reference.encoder.state_dict().values(), resumed.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(reference.history["loss"], resumed.history["loss"])


def test_checkpoint_of_another_run_is_refused(tmp_path):
    x, y = setup.data()
    setup.trainer().fit(x, y, nb_epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint_dir.*differs in \['nb_epochs'\]"):
        setup.trainer().fit(x, y, nb_epochs=2, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint_dir.*differs in \['data'\]"):
        setup.trainer().fit(x[::-1].copy(), y[::-1].copy(), nb_epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(TypeError, match="checkpoint_dir"):
        setup.trainer().fit(x, y, checkpoint_dir=3)

    pretrain(setup.encoder(), x, checkpoint_dir=tmp_path, **{**setup.PRETRAIN, "nb_epochs": 1})
    with pytest.raises(ValueError, match=r"checkpoint_dir.*differs in \['lr'\]"):
        pretrain(setup.encoder(), x, checkpoint_dir=tmp_path, lr=0.5, **{**setup.PRETRAIN, "nb_epochs": 1})
    with pytest.raises(ValueError, match=r"checkpoint_dir.*differs in \['augmentation'\]"):  # other views
        pretrain(
            setup.encoder(), x, checkpoint_dir=tmp_path, augmentation="batched", **{**setup.PRETRAIN, "nb_epochs": 1}
        )
