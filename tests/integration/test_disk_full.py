"""A full cache disk is survivable (issue 7, item 10).

The cache directory lives on a small tmpfs, already mostly taken by clean
content (files read from the service). Writing fills it. Before the fix:
journal commits failed and were retried with no pause (hundreds of
thousands of log lines, tens of thousands of allocate requests for a few
files), uploads that completed stayed in the journal (unmount waited its
full unmount_wait), and clean content was evicted only above
cache_max_size, so every later write failed with ENOSPC for ever.

Now: clean content is evicted when the cache filesystem is nearly full, so
writes work again; every file whose close() succeeded reaches the service
once; the journal is empty at unmount; the log stays short.
"""
import errno
import os
import sqlite3
import subprocess
import time

import pytest

from helpers import MiB, live, md5_bytes, wait_for

FS_SIZE = 24 * MiB


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the cache needs root")
    d = tmp_path / "cachefs"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % FS_SIZE, "tmpfs", str(d)],
                   check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_disk_full_survivable(account, emulator, mounter, small_fs):
    rng_data = [os.urandom(3 * MiB) for _ in range(5)]
    emulator.seed([{"path": "clean/c%d.bin" % i,
                    "content_b64": __import__("base64").b64encode(d).decode()}
                   for i, d in enumerate(rng_data)], user=account.user)
    emulator.reset_stats()
    m = mounter(account, options=["cache_dir=%s" % small_fs], allow_errors=True)
    # 15 MiB of clean content in the cache (of 24).
    for i, d in enumerate(rng_data):
        with open(os.path.join(m.path, "clean", "c%d.bin" % i), "rb") as f:
            assert f.read() == d

    os.mkdir(os.path.join(m.path, "w"))
    written = {}
    failed = []

    def write_one(i):
        name = "f%02d.bin" % i
        data = os.urandom(MiB)
        try:
            _write(os.path.join(m.path, "w", name), data)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            failed.append(name)
            return False
        written[name] = data
        return True

    def landed():
        t = live(emulator, account.user)
        return all((t.get("w/" + n) or {}).get("md5") == md5_bytes(d)
                   for n, d in written.items())

    def wait_landed():
        try:
            wait_for(landed, 120, "every written file on the service")
        except AssertionError:
            t = live(emulator, account.user)
            missing = [n for n in written if "w/" + n not in t]
            raise AssertionError("missing on the service: %s\ndaemon log (end):\n%s"
                                 % (missing, m.output()[-6000:]))

    # 1. Fill the disk: dirty content and clean content together.
    i = 0
    while i < 40 and write_one(i):
        i += 1
    assert failed, "the cache filesystem never filled up: test too small"
    print("\n%d files written before ENOSPC" % len(written))
    # 2. What was closed reaches the service, although the disk is full.
    wait_landed()
    # 3. Writes work again: clean content (uploaded or read) makes room.
    for name in failed:
        os.unlink(os.path.join(m.path, "w", name))
    del failed[:]
    for j in range(i + 1, i + 9):
        assert write_one(j), "write %d failed with ENOSPC after the uploads landed" % j
    wait_landed()
    # Uploads that landed leave the journal: unmount does not wait them out.
    t0 = time.monotonic()
    m.unmount(timeout=120)
    took = time.monotonic() - t0
    assert took < 30, took
    db = sqlite3.connect(os.path.join(str(small_fs), "journal.db"))
    left = db.execute("SELECT count(*) FROM upload WHERE state = 'pending'").fetchone()[0]
    db.close()
    assert left == 0, "%d uploads left pending in the journal" % left

    out = m.output()
    lines = out.count("\n")
    allocs = emulator.stats()["requests"].get("allocate", 0)
    print("daemon log: %d lines; allocate requests: %d for %d files"
          % (lines, allocs, len(written)))
    assert lines < 300, out[-5000:]
    assert allocs <= 3 * len(written) + 10, allocs
