"""The one write-then-rename helper: a reader sees the old file (or folder) or the new one, never half of one."""

import pytest

from seedlings_utils.files import folder_replaced_when_done, partial_path, replaced_when_done, write_text_atomically


def test_a_file_is_replaced_only_when_its_new_contents_are_complete(tmp_path):
    path = tmp_path / "record.json"
    write_text_atomically(path, "old")
    with pytest.raises(RuntimeError), replaced_when_done(path) as partial:
        partial.write_text("half")
        assert path.read_text() == "old"  # while it is written, readers see the old file
        raise RuntimeError("stopped mid-write")
    assert path.read_text() == "old" and not partial_path(path).exists()
    with replaced_when_done(path) as partial:
        partial.write_text("new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_folder_is_swapped_in_whole_and_a_failed_build_leaves_the_old_one(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "old.png").write_bytes(b"old")
    (tmp_path / "raw.partial").mkdir()  # an interrupted earlier build
    (tmp_path / "raw.partial" / "half.png").write_bytes(b"h")
    with pytest.raises(KeyboardInterrupt), folder_replaced_when_done(folder) as partial:
        assert not (partial / "half.png").exists()  # what the interrupted build left is gone
        (partial / "new.png").write_bytes(b"new")
        raise KeyboardInterrupt
    assert [p.name for p in folder.iterdir()] == ["old.png"] and not partial.exists()
    with folder_replaced_when_done(folder) as partial:
        (partial / "new.png").write_bytes(b"new")
    assert [p.name for p in folder.iterdir()] == ["new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
