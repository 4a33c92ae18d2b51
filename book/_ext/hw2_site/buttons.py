"""Buttons that need the book's public repository appear only when one is configured.

The repository is configured in one place: ``repository.url`` in
``_config.yml`` (with ``branch`` and ``path_to_book``). Until a real public
repository is named there, the site renders no launch (Binder, Colab), edit,
issues or repository button, since each would lead to a missing page. Once it
is, this module turns them all on, and points the Colab button at the
chapter's notebook on the branch where the Pages workflow publishes the
chapters as notebooks (``hw2_notebooks_branch``): Colab opens ``.ipynb``
files, not MyST Markdown.
"""
from __future__ import annotations

from sphinx.application import Sphinx

#: Repository URLs that are not the book's: Jupyter Book's own default.
NOT_A_REPOSITORY = ("", "https://github.com/executablebooks/jupyter-book")
#: The buttons that lead into the repository.
REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button",
                      "use_edit_page_button")
#: The launch buttons of a configured repository.
LAUNCH_BUTTONS = {"notebook_interface": "jupyterlab",
                  "binderhub_url": "https://mybinder.org",
                  "colab_url": "https://colab.research.google.com"}


def public_repository(config) -> str | None:
    """The book's public repository (``repository.url``), or None when none is set."""
    url = str((config.html_theme_options or {}).get("repository_url") or "").rstrip("/")
    return None if url in NOT_A_REPOSITORY else url


def configure_buttons(app: Sphinx, config) -> None:
    """All the repository's buttons on when it is configured, else none of them."""
    options = config.html_theme_options
    configured = public_repository(config) is not None
    for key in REPOSITORY_BUTTONS:
        options[key] = configured
    options["launch_buttons"] = dict(LAUNCH_BUTTONS) if configured else {}
    if not configured:
        options.pop("repository_url", None)


def _colab_to_notebooks_branch(app: Sphinx, pagename, templatename, context,
                               doctree) -> None:
    branch = app.config.hw2_notebooks_branch
    if not branch:
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            url = button.get("url", "")
            if button.get("text") == "Colab" and "/blob/" in url:
                head, tail = url.split("/blob/", 1)
                path = tail.split("/", 1)[1]
                if path.endswith(".md"):
                    path = path[: -len(".md")] + ".ipynb"
                button["url"] = f"{head}/blob/{branch}/{path}"


def setup(app: Sphinx) -> None:
    app.add_config_value("hw2_notebooks_branch", "", "html")
    app.connect("config-inited", configure_buttons)
    # After sphinx-book-theme's own html-page-context handler (priority 500).
    app.connect("html-page-context", _colab_to_notebooks_branch, priority=900)
