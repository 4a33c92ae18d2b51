"""Figures in a notebook: drawn at the book's resolution, labelled with their text size.

A chapter's figures are matplotlib figures that the Jupyter kernel turns into
PNG images. On a phone the site shows each image at its own pixel size (its
box scrolls sideways, as code does), so how large its text reads there is
fixed by the image: a point of text is ``FIGURE_DPI / 72`` pixels. At
``FIGURE_DPI = 144`` that is two pixels, and the smallest text the chapters
draw (8 pt) is 16 px, larger than the page's small print; on a wide screen the
image is scaled down to the text column as before.

Each PNG also carries, in a ``tEXt`` chunk named :data:`TEXT_SIZE_KEY`, the
height in image pixels of the smallest text drawn in it (``none`` when it
has none), so the site suite can check that every figure stays readable at
the width it is shown without reading glyphs.

:func:`install` puts this PNG renderer in place of IPython's for matplotlib
figures in the running kernel (``hw2.notebook`` calls it on import). The
inline backend re-selects its formatters whenever its options change, so
the renderer checks that it is still the one in place before every cell and
after each (before the inline backend shows the cell's figures).
"""
from __future__ import annotations

import base64
import struct
import sys
import zlib

#: Resolution of the PNGs, in pixels per inch (a point of text is two pixels).
FIGURE_DPI = 144
#: Name of the PNG text chunk that holds the smallest text's height in pixels.
TEXT_SIZE_KEY = "hw2:smallest-text-px"


def smallest_text_px(fig, dpi: float = FIGURE_DPI) -> float | None:
    """Height in pixels (font size at ``dpi``) of the smallest visible text of
    ``fig``; None when it draws no text."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return min(sizes) * dpi / 72 if sizes else None


def with_text_chunk(png: bytes, key: str, value: str) -> bytes:
    """``png`` with a ``tEXt`` chunk ``key``: ``value`` right after its header."""
    signature = b"\x89PNG\r\n\x1a\n"
    if not png.startswith(signature) or png[12:16] != b"IHDR":
        raise ValueError("with_text_chunk: not a PNG image "
                         "(no PNG signature and IHDR header)")
    end_of_header = 8 + 4 + 4 + struct.unpack(">I", png[8:12])[0] + 4
    data = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = (struct.pack(">I", len(data)) + b"tEXt" + data
             + struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF))
    return png[:end_of_header] + chunk + png[end_of_header:]


def figure_png(fig) -> str:
    """``fig`` as a base64 PNG at :data:`FIGURE_DPI`, labelled with its text size."""
    from IPython.core.pylabtools import print_figure

    png = print_figure(fig, fmt="png", bbox_inches="tight", dpi=FIGURE_DPI)
    if png is None:   # a figure with nothing drawn: IPython shows no image
        return None
    size = smallest_text_px(fig)
    label = "none" if size is None else f"{size:.2f}"
    labelled = with_text_chunk(png, TEXT_SIZE_KEY, label)
    return base64.b64encode(labelled).decode("ascii")


def _ensure_renderer(*_event_args) -> None:
    if "matplotlib.figure" not in sys.modules:
        return   # no figure can exist yet; checked again after the cell
    from matplotlib.figure import Figure

    shell = _shell()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    try:
        current = png.lookup_by_type(Figure)
    except KeyError:
        current = None
    if current is not figure_png:
        png.for_type(Figure, figure_png)


def _shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def install() -> bool:
    """Render matplotlib figures with :func:`figure_png` in the running IPython kernel.

    Returns whether a kernel was found (outside IPython this does nothing).
    """
    shell = _shell()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    for event in ("pre_run_cell", "post_execute"):
        if _ensure_renderer not in shell.events.callbacks[event]:
            shell.events.register(event, _ensure_renderer)
    _ensure_renderer()
    return True
