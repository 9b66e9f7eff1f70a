"""Any torchattacks attack (PGD, APGD, CW, FAB, Square, ...) as an ART ``EvasionAttack`` on a PyTorchClassifier."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.batching import map_batches
from art_ssl.core.checks import check_images, check_labels, check_positive_int
from art_ssl.core.forward import PreprocessedModel
from art_ssl.core.modes import evaluating
from art_ssl.core.seeding import scoped_seed

# Not a dependency of art_ssl: torchattacks' metadata pulls torchvision and an old `requests` it never imports.
TORCHATTACKS_HINT = "pip install --no-deps torchattacks==3.5.1"


def _import_torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError(
            f"TorchattacksAttack needs torchattacks, which art_ssl does not install: "
            f"`{TORCHATTACKS_HINT}` (--no-deps: it never imports the torchvision its metadata asks for)."
        ) from err
    return torchattacks


class TorchattacksAttack(EvasionAttack):
    """
    Wraps a `torchattacks <https://github.com/Harry24k/adversarial-attacks-pytorch>`_ attack (Kim, arXiv
    2010.01950) so that ART pipelines get it: numpy in and out, ART's classifier, its preprocessing applied inside
    (torchattacks then sees [0, 1] pixels, as it expects), labels optional.

        >>> attack = TorchattacksAttack(classifier, "APGD", eps=8 / 255, steps=20)
        >>> x_adv = attack.generate(x_test, y_test)

    :param estimator: ART ``PyTorchClassifier`` with clip values [0, 1].
    :param attack: A torchattacks class name (``"PGD"``, ``"APGD"``, ``"FGSM"``, ...) or the class itself.
    :param attack_kwargs: Keyword arguments of that class (``eps``, ``alpha``, ``steps``, ...), passed through.
    :param targeted: With ``y`` given to :meth:`generate`, attack towards those labels.
    :param batch_size: Images per call of the torchattacks attack.
    :param seed: Seeds torch's generator for random starts (restored afterwards).
    """

    attack_params = EvasionAttack.attack_params + ["attack", "attack_kwargs", "targeted", "batch_size", "seed"]
    _estimator_requirements = (PyTorchClassifier,)

    def __init__(
        self,
        estimator: PyTorchClassifier,
        attack: str | type = "PGD",
        targeted: bool = False,
        batch_size: int = 128,
        seed: int = 0,
        **attack_kwargs: Any,
    ) -> None:
        super().__init__(estimator=estimator)
        self.attack = attack
        self.attack_kwargs = attack_kwargs
        self._targeted = targeted
        self.batch_size = batch_size
        self.seed = seed
        self._check_params()
        self._attack = self._build()

    @property
    def targeted(self) -> bool:
        return self._targeted

    def _check_params(self) -> None:
        torchattacks = _import_torchattacks()

        if isinstance(self.attack, str):
            cls = getattr(torchattacks, self.attack, None)
            if not (isinstance(cls, type) and issubclass(cls, torchattacks.attack.Attack)):
                names = sorted(
                    n
                    for n in dir(torchattacks)
                    if isinstance(getattr(torchattacks, n), type)
                    and issubclass(getattr(torchattacks, n), torchattacks.attack.Attack)
                    and n not in ("Attack", "MultiAttack", "VANILA")
                )
                raise ValueError(f"`attack` {self.attack!r} is not a torchattacks attack; choose from {names}.")
        elif not (isinstance(self.attack, type) and issubclass(self.attack, torchattacks.attack.Attack)):
            raise TypeError(f"`attack` must be a torchattacks attack name or class, got {self.attack!r}.")
        if not isinstance(self._targeted, bool):
            raise ValueError(f"`targeted` must be a bool, got {self._targeted!r}.")
        check_positive_int("batch_size", self.batch_size)
        clip = self.estimator.clip_values
        if clip is None or float(np.min(clip[0])) != 0.0 or float(np.max(clip[1])) != 1.0:
            raise ValueError("torchattacks works on [0, 1] images: the classifier needs clip_values=(0, 1).")

    def _build(self):
        torchattacks = _import_torchattacks()

        cls = getattr(torchattacks, self.attack) if isinstance(self.attack, str) else self.attack
        try:
            attack = cls(PreprocessedModel(self.estimator).eval(), **self.attack_kwargs)
        except TypeError as err:
            raise ValueError(f"Bad arguments for torchattacks.{cls.__name__}: {err}") from err
        attack.set_device(self.estimator.device)
        return attack

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """
        :param x: Clean images (N, C, H, W) in [0, 1].
        :param y: True labels (untargeted) or target labels (``targeted=True``), integers or one-hot; default the
                  classifier's predictions (ART's convention against label leaking).
        :return: Adversarial images, float32.
        """
        clf: PyTorchClassifier = self.estimator
        x = check_images(x, "x", clf.input_shape, clf.clip_values)
        if y is None:
            if self.targeted:
                raise ValueError("A targeted attack needs target labels `y`.")
            y = clf.predict(x, batch_size=self.batch_size).argmax(1)
        y = check_labels(y, len(x), "y", clf.nb_classes)
        if self.targeted:
            self._attack.set_mode_targeted_by_label(quiet=True)
        elif self._attack.targeted:  # set_mode_default prints; call it only to switch back
            self._attack.set_mode_default()

        def attack(xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
            xb_t, yb_t = torch.from_numpy(xb).to(clf.device), torch.from_numpy(yb).to(clf.device)
            return self._attack(xb_t, yb_t).detach().cpu().numpy()

        with scoped_seed(self.seed), evaluating(clf.model):  # torchattacks draws from the global generators
            return map_batches(attack, x, y, batch_size=self.batch_size).astype(np.float32)
