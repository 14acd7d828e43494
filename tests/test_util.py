"""The package's internal helpers (deepimaging/_util.py) that several floors share."""

import pytest

from deepimaging._util import atomic_folder


def test_atomic_folder_shows_the_whole_folder_or_nothing_and_leaves_no_temporary_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()  # an empty folder (a user's mkdir) is filled
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("a")
        assert list(target.iterdir()) == []  # nothing is visible before the block ends
    assert (target / "a.txt").read_text() == "a"
    with pytest.raises(RuntimeError, match="crash"), atomic_folder(tmp_path / "other") as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("crash")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no half folder, no .part left


def test_atomic_folder_never_replaces_a_folder_that_filled_meanwhile(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(OSError), atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")  # another writer got there first
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
