"""Sphinx configuration of the art_ssl API reference (`make docs`; warnings are errors)."""

from __future__ import annotations

import os
import re
import sys

from sphinx.util import logging

sys.path.insert(0, os.path.abspath(".."))  # the checkout being documented, not an installed copy

import art_ssl  # noqa: E402

logger = logging.getLogger(__name__)

project = "art_ssl"
author = "art_ssl maintainers"
copyright = "2026, art_ssl maintainers"
release = art_ssl.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]

# Docstrings use reST fields (`:param x:` one per line, `:return:`), as ART does; signatures carry the types.
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autoclass_content = "class"
# nn.Module methods overridden without a docstring would otherwise show torch's own (with its cross-references).
autodoc_inherit_docstrings = False
# The heavy runtime dependencies are real imports (the examples run); nothing is mocked.
nitpicky = False
intersphinx_mapping: dict[str, tuple[str, None]] = {}  # offline build: no inventories fetched

# Only the pages' testcode blocks run (docstrings' ``>>>`` lines are fragments that assume a context).
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import numpy as np
import torch
torch.manual_seed(0)
"""

html_theme = "alabaster"
html_static_path: list[str] = []
exclude_patterns = ["_build"]

# One reST field per line (STYLE.md): a second `:param x:` on a line renders as text inside the first field, silently,
# so the build reports it and `-W` fails on it.
_FIELD = re.compile(r"(?<![\w`]):(?:param|type|return|returns|rtype|raises)\b[^:`]*:")


def _one_field_per_line(app, what, name, obj, options, lines):
    for number, line in enumerate(lines):
        if len(_FIELD.findall(line)) > 1:
            logger.warning(
                f"several reST fields on one docstring line of {name}: {line.strip()!r}",
                location=(getattr(obj, "__module__", name), number),
            )


def setup(app):
    app.connect("autodoc-process-docstring", _one_field_per_line)
