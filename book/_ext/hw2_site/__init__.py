"""Sphinx glue for the book's website (loaded through ``sphinx.local_extensions``).

One module per job, so that a maintainer finds each by its name:

* :mod:`~hw2_site.mathjax` -- MathJax served with the book, not from a CDN;
* :mod:`~hw2_site.buttons` -- launch, edit, issues and repository buttons only
  when a public repository is configured, and Colab opening the published
  notebooks;
* :mod:`~hw2_site.console` -- no console errors (duplicate scripts, the theme's
  default mode);
* :mod:`~hw2_site.bibliography` -- author-year labels that match the citations;
* :mod:`~hw2_site.reuse` -- one execution: the book renders nbval's outputs;
* :mod:`~hw2_site.edition` -- the notebook edition, the downloadable ``.ipynb``
  as plain Markdown;
* :mod:`~hw2_site.install` -- notebooks that run outside the repository: the
  package's wheel served with the site, and a first cell that installs it;
* :mod:`~hw2_site.glued` -- bookkeeping output hidden on the page, the answers'
  glued numbers kept current.

Chapters run unattended here: ``HW2_QUIET`` keeps their training cells from
printing progress bars (``hw2.training``). The browser suite
``tests/site/test_site.py`` checks all of this on the built site.
"""
from __future__ import annotations

import os

from sphinx.application import Sphinx

from hw2_site import (bibliography, buttons, console, edition, glued, install, mathjax,
                      reuse)
from hw2_site.buttons import public_repository
from hw2_site.edition import (MACROS_MARKER, add_macros_cell, macros_markdown,
                              notebook_edition, plain_directives, split_at_solutions)
from hw2_site.install import add_install_cell, install_source, wheel_name

__all__ = ["MACROS_MARKER", "add_macros_cell", "macros_markdown", "notebook_edition",
           "plain_directives", "split_at_solutions", "public_repository",
           "add_install_cell", "install_source", "wheel_name", "setup"]


def setup(app: Sphinx) -> dict:
    os.environ["HW2_QUIET"] = "1"  # the kernels the build starts inherit it
    for job in (mathjax, buttons, console, bibliography, reuse, edition, install,
                glued):
        job.setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "2"}
