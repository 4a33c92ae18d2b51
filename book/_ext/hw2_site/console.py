"""No console errors on any page.

sphinx-thebe registers its configuration script twice (``const THEBE_JS_URL``
declared twice: an uncaught SyntaxError on every page), so identical scripts
are dropped from each page; and the theme's light/dark mode gets an explicit
default (``auto``; an empty one logs "Got invalid theme mode" on every first
visit).
"""
from __future__ import annotations

from sphinx.application import Sphinx


def _theme_defaults(app: Sphinx, config) -> None:
    # pydata-sphinx-theme reads the mode from the HTML context, not a theme option.
    if not config.html_context.get("default_mode"):
        config.html_context["default_mode"] = "auto"


def _drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    unique, seen = [], set()
    for js in scripts:
        # Inline scripts are registered with filename None or '' (same script twice).
        key = (js.filename or "", tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app: Sphinx) -> None:
    app.connect("config-inited", _theme_defaults)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
