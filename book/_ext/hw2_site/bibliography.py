"""Bibliography labels that match the citations.

The text cites author-year ("Kingma and Ba, 2015"); the ``hw2authoryear``
pybtex style labels the bibliography the same way instead of [1], [2], ...;
:func:`citation` writes a citation the same way for the notebook edition.
"""
from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

_BIB: dict[str, object] = {}


def citation(app: Sphinx, role: str, body: str) -> str:
    """(Kingma and Ba, 2015; He et al., 2016a) for {cite}, Kingma and Ba (2015) for {cite:t}."""
    if not _BIB:
        from pybtex.database import parse_file
        from pybtex.plugin import find_plugin

        entries = {}
        for name in app.config.bibtex_bibfiles:
            entries.update(parse_file(str(Path(app.srcdir) / name)).entries)
        style = find_plugin("pybtex.style.formatting", "hw2authoryear")()
        keys = sorted(entries)
        sorted_entries = [entries[k] for k in keys]
        labels = dict(zip(keys, style.label_style.format_labels(sorted_entries)))
        _BIB.update(labels=labels)
    labels = _BIB["labels"]
    keys = [k.strip() for k in body.split(",")]
    found = [labels.get(k, k) for k in keys]
    if role == "cite:t":
        return "; ".join(f"{lab.rsplit(', ', 1)[0]} ({lab.rsplit(', ', 1)[-1]})" for lab in found)
    return "(" + "; ".join(found) + ")"


def _register_bibliography_style() -> None:
    from collections import Counter

    from pybtex.plugin import register_plugin
    from pybtex.richtext import Text
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle

    def last_name(person) -> str:
        return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")

    class AuthorYearLabels(BaseLabelStyle):
        """Labels like the author_year citations: "Rumelhart et al., 1986", "Kingma and Ba, 2015"."""

        def format_label(self, entry) -> str:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [last_name(p) for p in people]
            if not names:
                who = entry.key
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            return f"{who}, {entry.fields.get('year', 'n.d.')}"

        def format_labels(self, sorted_entries):
            labels = [self.format_label(entry) for entry in sorted_entries]
            total, seen = Counter(labels), Counter()
            for label in labels:
                if total[label] == 1:
                    yield label
                else:  # He et al., 2016a / 2016b
                    seen[label] += 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]

    class AuthorYearStyle(PlainStyle):
        default_label_style = AuthorYearLabels

    register_plugin("pybtex.style.labels", "hw2authoryear", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", "hw2authoryear", AuthorYearStyle, force=True)


def setup(app: Sphinx) -> None:
    _register_bibliography_style()
