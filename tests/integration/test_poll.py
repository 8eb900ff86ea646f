"""Faster change detection (issue 11): a directory the user is reading is
revalidated in the background every poll_interval seconds (one folder GET),
so that changes made by another client (rclone 1.60 here) show up in the
mount within that bound, although dir_cache_time is an hour."""
import os
import time

from helpers import rclone_for, wait_for


def test_rclone_change_visible_within_poll_interval(account, emulator, mounter, tmp_path):
    rc = rclone_for(emulator, account, tmp_path / "rc")
    local = tmp_path / "src"
    local.mkdir()
    (local / "keep.txt").write_bytes(b"old content\n")
    (local / "gone.txt").write_bytes(b"to be deleted\n")
    rc.run("copy", str(local), "jc:shared")
    m = mounter(account, options=["dir_cache_time=3600", "poll_interval=2"])
    d = os.path.join(m.path, "shared")
    assert sorted(os.listdir(d)) == ["gone.txt", "keep.txt"]
    assert open(os.path.join(d, "keep.txt"), "rb").read() == b"old content\n"
    # Another client adds, changes and deletes.
    (local / "new.txt").write_bytes(b"made by rclone\n")
    (local / "keep.txt").write_bytes(b"new content, longer\n")
    rc.run("copyto", str(local / "new.txt"), "jc:shared/new.txt")
    rc.run("copyto", str(local / "keep.txt"), "jc:shared/keep.txt")
    rc.run("deletefile", "jc:shared/gone.txt")
    t0 = time.monotonic()
    # Generous bound (loaded machine): several poll intervals, far below
    # dir_cache_time. A name looked up before (gone.txt), a negative entry
    # (new.txt) and cached pages (keep.txt) must all be invalidated.
    wait_for(lambda: sorted(os.listdir(d)) == ["keep.txt", "new.txt"], 30,
             "rclone's changes in the listing")
    wait_for(lambda: open(os.path.join(d, "keep.txt"), "rb").read() ==
             b"new content, longer\n", 30, "the changed content")
    elapsed = time.monotonic() - t0
    assert open(os.path.join(d, "new.txt"), "rb").read() == b"made by rclone\n"
    assert not os.path.exists(os.path.join(d, "gone.txt"))
    print("change visible after %.1f s (poll_interval 2, dir_cache_time 3600)" % elapsed)
    m.unmount()

