"""Glued numbers: bookkeeping hidden on the page, the answers' copy kept current.

A chapter's ``show_glued()`` prints the numbers its prose quotes ("Quoted in
the text: ..."), so a notebook reader sees where each number is computed. On
the HTML page the prose shows the numbers already, so those outputs are
removed from the page (the downloadable notebook keeps them).

After the build, ``hw2.answers.refresh_values`` writes the values the
answers quote (``hw2/answer_values.json``), so a checkout without ``_build/``
and an installed wheel show the answers with their numbers; the site suite
checks the committed copy against the build.
"""
from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
#: How hw2.notebook.Glued's output starts.
GLUED_HEADING = "Quoted in the text:"


def _drop_glued_outputs(app: Sphinx, doctree, docname) -> None:
    for block in list(doctree.findall(nodes.literal_block)):
        if not block.astext().startswith(GLUED_HEADING):
            continue
        parent = block.parent
        parent.remove(block)
        # the output container a cell showed only this in
        while parent is not None and not parent.children and parent.parent is not None \
                and "cell_output" in parent.get("classes", []):
            grand = parent.parent
            grand.remove(parent)
            parent = grand


def _refresh_answer_values(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from hw2 import answers

    try:
        changed = answers.refresh_values()
    except LookupError as e:  # a partial build: some chapters were not built
        LOGGER.info("hw2: %s; %s not refreshed", e, answers.VALUES_FILE.name)
        return
    if changed:
        LOGGER.info("hw2: refreshed %s (commit it)", answers.VALUES_FILE)


def setup(app: Sphinx) -> None:
    app.connect("doctree-resolved", _drop_glued_outputs)
    app.connect("build-finished", _refresh_answer_values)
