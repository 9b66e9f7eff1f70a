#!/usr/bin/env bash
# Release check: `python -m build` makes a wheel and an sdist; each is installed into a fresh virtual environment and
# must pass a smoke test run from outside the repository (so the installed files, not the checkout, are tested).
# The venv sees the system site-packages for the heavy, already installed dependencies (torch, ART, ...): no torch is
# ever fetched here. Usage: .ci/wheel_smoke.sh [PYTHON]  (make wheel-smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

"$PYTHON" -m pip install -q build
"$PYTHON" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL="$(ls "$WORK"/dist/*.whl)"
SDIST="$(ls "$WORK"/dist/*.tar.gz)"
echo "built $(basename "$WHEEL") and $(basename "$SDIST")"

"$PYTHON" -m venv --system-site-packages "$WORK/venv"
VPY="$WORK/venv/bin/python"
cat >"$WORK/smoke.py" <<'PY'
"""Smoke test of an installed art_ssl: package data, the zoo, one attack and the CLI entry point."""
import os
import subprocess
import sys
from importlib import metadata, resources

import numpy as np

import art_ssl
from art_ssl.attacks.evasion import PAP
from art_ssl.data import load_fashion_mnist_subset
from art_ssl.zoo import list_encoders, load_encoder

venv = os.path.realpath(sys.prefix)
assert os.path.realpath(art_ssl.__file__).startswith(venv), f"art_ssl imported from {art_ssl.__file__}, not {venv}"
files = resources.files("art_ssl")
assert files.joinpath("py.typed").is_file(), "py.typed missing"
assert files.joinpath("data", "LICENSE-fashion-mnist.txt").is_file(), "Fashion-MNIST licence notice missing"
licences = [str(f) for f in metadata.files("art_ssl") if "licenses" in str(f)]
assert any(f.endswith("LICENSE") for f in licences), f"LICENSE not in the dist-info: {licences}"
x, y = load_fashion_mnist_subset("test", size=64)
assert x.shape == (1000, 1, 64, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
names = list(list_encoders())
assert "simclr_r18" in names, names
encoder = load_encoder("simclr_r18", device_type="cpu")
xs = x[:16]
z = encoder.predict(xs, batch_size=16)
assert z.shape == (16, encoder.embedding_dim) and np.isfinite(z).all(), z.shape
attack = PAP(encoder, eps=8 / 255, max_iter=2, batch_size=8, verbose=False)
x_adv = attack.generate(xs)
assert np.abs(x_adv - xs).max() <= 8 / 255 + 1e-6 and np.abs(x_adv - xs).max() > 0
cli = os.path.join(os.path.dirname(sys.executable), "art-ssl")
out = subprocess.run([cli, "--help"], capture_output=True, text=True, check=True).stdout
assert "audit" in out, out
print(f"ok: art_ssl {metadata.version('art_ssl')} from {os.path.dirname(art_ssl.__file__)}, {len(names)} zoo encoders")
PY

for DIST in "$WHEEL" "$SDIST"; do
  echo "== $(basename "$DIST")"
  "$VPY" -m pip install -q --force-reinstall --no-deps "$DIST"
  "$VPY" -m pip install -q "$DIST"  # the declared requirements resolve (met by the system site-packages)
  (cd "$WORK" && "$VPY" smoke.py)
done
