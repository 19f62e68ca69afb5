"""gen3dface.core.storage: files and folders are either absent or complete."""

import os
import stat
import threading

import pytest

from gen3dface.core.cameras import target_ring
from gen3dface.core.errors import OutputError
from gen3dface.core.storage import atomic_dir, atomic_write_text


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    final = tmp_path / "run" / "model"

    def write(tag):
        def go(stage):
            (stage / "a.txt").write_text(tag)
            (stage / "b.txt").write_text(tag)

        return go

    atomic_dir(final, write("one"))
    assert {p.name: p.read_text() for p in final.iterdir()} == {"a.txt": "one", "b.txt": "one"}

    def broken(stage):
        (stage / "a.txt").write_text("two")
        raise KeyboardInterrupt  # killed half way

    with pytest.raises(KeyboardInterrupt):
        atomic_dir(final, broken)
    assert {p.name: p.read_text() for p in final.iterdir()} == {"a.txt": "one", "b.txt": "one"}
    atomic_dir(final, write("three"))
    assert (final / "b.txt").read_text() == "three"
    assert sorted(p.name for p in final.parent.iterdir()) == ["model"]  # no staging or old copies left


def test_atomic_write_text_and_batched_cameras(tmp_path):
    atomic_write_text(tmp_path / "x.json", "{}")
    assert (tmp_path / "x.json").read_text() == "{}" and len(list(tmp_path.iterdir())) == 1
    ring = target_ring(4, image_size=32)
    b = ring.batched(3)
    assert b.shape == (3, 4) and (b.K[2] == ring.K).all() and (b.c2w[1] == ring.c2w).all()
    with pytest.raises(ValueError):
        b.batched(2)


def test_atomic_write_keeps_links_and_writes_into_pipes(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    atomic_write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink() and target.read_text() == "new"
    fifo = tmp_path / "pipe"  # a device or pipe (-o /dev/null) is written into, never replaced by a file
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_text(fifo, "through")
    reader.join(10)
    assert got == [b"through"] and stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
