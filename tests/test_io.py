"""Tests for hw2._io: files written atomically (complete or absent)."""
from __future__ import annotations

import pytest


def test_atomic_write_leaves_the_old_file_whole_when_a_write_fails(tmp_path):
    from hw2._io import WriteError, atomic_write

    target = tmp_path / "result.json"
    atomic_write(target, lambda f: f.write("old, complete"), text=True)

    def half_then_fail(f):
        f.write("new, hal")
        raise KeyboardInterrupt  # a kill in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail, text=True)
    assert target.read_text() == "old, complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temp file
    # While the new content is written it is not in the target yet; then it all is.
    seen = []
    atomic_write(target, lambda f: (f.write("new"), seen.append(target.read_text())),
                 text=True)
    assert seen == ["old, complete"] and target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(WriteError, match="folder.json: a folder of that name is in the way"):
        atomic_write(tmp_path / "folder.json", lambda f: f.write("x"), text=True)
