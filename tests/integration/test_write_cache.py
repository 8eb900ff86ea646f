"""-o cache_max_size (issue 4, design.md section 6): clean content is evicted
to stay near the bound; dirty content never is, and it may exceed the bound
while the disk has room ("writes fail with ENOSPC only when dirty data alone
exceeds the bound and the disk is full"); with the cache on a full (30 MiB
tmpfs) filesystem writes fail with ENOSPC and nothing whose close() returned
is lost."""
import errno
import os
import random
import subprocess

import pytest

from helpers import MiB, dir_bytes, knobs, live, md5_bytes, md5_file


def test_clean_content_is_evicted_to_the_bound(account, emulator, mounter):
    names = ["f%d.bin" % i for i in range(10)]       # 10 x 6 MiB, random content
    emulator.seed([{"path": n, "size": 6 * MiB} for n in names], user=account.user, seed=21)
    srv = live(emulator, account.user)
    m = mounter(account, options=["cache_max_size=20M"])
    peak = 0
    for rnd in range(2):
        for n in names:
            assert md5_file(os.path.join(m.path, n)) == srv[n]["md5"], n
            peak = max(peak, dir_bytes(account.cache_home))
    print("cache peak %.1f MiB for 60 MiB read twice with a 20 MiB bound" % (peak / MiB))
    # While reading: the bound plus the file being read plus the index.
    assert peak <= 20 * MiB + 6 * MiB + 4 * MiB, "cache grew to %.1f MiB" % (peak / MiB)
    m.unmount()
    # At rest (every file closed): the cached content is within the bound.
    content = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(account.cache_home)
                  for f in fs if os.path.basename(dp) == "data")
    assert content <= 20 * MiB, (
        "%.1f MiB of clean content stays cached after the last close with a 20 MiB bound"
        % (content / MiB))


@pytest.fixture
def tiny_cache(tmp_path):
    d = tmp_path / "tiny-cache"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m,mode=0700", "tmpfs", str(d)],
                       capture_output=True, text=True)
    assert p.returncode == 0, "cannot mount a tmpfs for the cache (needs root): " + p.stderr
    yield str(d)
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_dirty_data_beyond_the_bound_while_the_disk_has_room(account, emulator, mounter):
    """One 32 MiB file with a 20 MiB bound: its upload cannot start before
    close(), so the bound must not refuse it while the disk has room."""
    rng = random.Random(23)
    m = mounter(account, options=["cache_max_size=20M"], allow_errors=True)
    data = rng.randbytes(32 * MiB)
    try:
        with open(os.path.join(m.path, "big.bin"), "wb") as f:
            f.write(data)
        err = None
    except OSError as e:
        err = e
    assert err is None, "writing 32 MiB with cache_max_size=20M and a roomy disk: %s" % err
    m.unmount(timeout=300)
    assert live(emulator, account.user)["big.bin"]["md5"] == md5_bytes(data)


def test_enospc_on_a_full_cache_filesystem(account, emulator, mounter, tiny_cache):
    rng = random.Random(22)
    m = mounter(account, options=["cache_dir=" + tiny_cache, "cache_max_size=1G"],
                allow_errors=True)
    closed = {}
    failed_at = None
    # Listed before the outage: a create in a directory never listed needs the
    # service (is the name, in any case, there already?).
    assert os.listdir(m.path) == []
    with knobs(emulator, outage=True):       # nothing can be uploaded: all stays dirty
        for i in range(20):
            data = rng.randbytes(3 * MiB)
            name = "f%02d.bin" % i
            try:
                with open(os.path.join(m.path, name), "wb") as f:
                    f.write(data)
            except OSError as e:
                failed_at = (name, e.errno)
                break
            closed[name] = data
        assert failed_at is not None, "30 MiB of dirty data fit in a 30 MiB tmpfs?"
        assert failed_at[1] == errno.ENOSPC, "write failed with %s, not ENOSPC" % (
            errno.errorcode.get(failed_at[1]))
        # The mount still works: what was closed reads back.
        for name, data in closed.items():
            with open(os.path.join(m.path, name), "rb") as f:
                assert f.read() == data, name
    # Back online: the half-written file can go (its delete may need the service).
    try:
        os.unlink(os.path.join(m.path, failed_at[0]))
    except FileNotFoundError:
        pass
    print("%d files of 3 MiB closed before ENOSPC" % len(closed))
    assert len(closed) >= 7, "ENOSPC came with %d MiB of 30 written" % (3 * len(closed))
    m.unmount(timeout=300)
    t = live(emulator, account.user)
    bad = [n for n, d in closed.items() if n not in t or t[n]["md5"] != md5_bytes(d)]
    assert not bad, "closed files lost or corrupt: %r" % bad
