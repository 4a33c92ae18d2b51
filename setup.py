"""Build hook: a wheel of ``hw2`` carries the book's committed data.

A chapter's notebook downloaded from the book's site runs with ``hw2``
installed from a wheel, on a machine without the repository. What the
chapters read besides the package -- the study's result files, the benchmark
measurements, the chapters themselves (the answers of ``hw2.answers`` are their
question sections) -- is copied into the wheel as ``hw2/_book/<path>``, and
``hw2._io.book_path`` finds it there when there is no checkout. An editable
install (``pip install -e .``) reads the checkout and copies nothing.

The build works in ``_build/setuptools`` (not ``build/`` beside the package,
where a stale copy could be committed by mistake), or in ``$HW2_BUILD_BASE``
when set (the book build gives each wheel a folder of its own, so two builds
at once do not empty each other's), and starts each wheel from an empty
``hw2/`` there, so a module or result file that was removed from the
repository does not linger in the next wheel.
"""
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Files of the repository the wheel carries (paths relative to its root).
BUNDLED = ("results/**/*.json", "benchmarks/*.json", "book/**/*.md",
           "book/references.bib")


class BuildWithBook(build_py):
    """``build_py`` that also copies :data:`BUNDLED` into ``hw2/_book/``."""

    def run(self):
        editable = getattr(self, "editable_mode", False)
        if not editable:
            shutil.rmtree(Path(self.build_lib) / "hw2", ignore_errors=True)
        super().run()
        if editable:
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "hw2" / "_book"
        for pattern in BUNDLED:
            for source in sorted(root.glob(pattern)):
                relative = source.relative_to(root)
                if any(part.startswith((".", "_build")) for part in relative.parts):
                    continue  # checkpoints, claims, temporary files, build output
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildWithBook},
      options={"build": {"build_base": os.environ.get("HW2_BUILD_BASE",
                                                      "_build/setuptools")}})
