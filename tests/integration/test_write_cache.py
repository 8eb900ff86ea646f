"""-o cache_max_size (issue 4, design.md section 6): clean content is evicted
to stay near the bound; dirty content never is; with the cache on a full
(30 MiB tmpfs) filesystem writes fail with ENOSPC and nothing whose close()
returned is lost."""
import base64
import errno
import os
import random
import subprocess

import pytest

from wtest_helpers import MiB, dir_bytes, knobs, live, md5_bytes, md5_file


def test_clean_content_is_evicted_to_the_bound(account, emulator, mounter):
    rng = random.Random(21)
    files = {"f%d.bin" % i: rng.randbytes(6 * MiB) for i in range(10)}    # 60 MiB
    emulator.seed([{"path": n, "content_b64": base64.b64encode(d).decode()}
                   for n, d in files.items()], user=account.user)
    m = mounter(account, options=["cache_max_size=20M"])
    peak = 0
    for rnd in range(2):
        for n, d in files.items():
            assert md5_file(os.path.join(m.path, n)) == md5_bytes(d), n
            peak = max(peak, dir_bytes(account.cache_home))
    print("cache peak %.1f MiB for 60 MiB read twice with a 20 MiB bound" % (peak / MiB))
    # The bound plus one file being read plus the index: well under 60 MiB.
    assert peak <= 20 * MiB + 6 * MiB + 4 * MiB, "cache grew to %.1f MiB" % (peak / MiB)
    m.unmount()
    assert dir_bytes(account.cache_home) <= 24 * MiB


@pytest.fixture
def tiny_cache(tmp_path):
    d = tmp_path / "tiny-cache"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m,mode=0700", "tmpfs", str(d)],
                       capture_output=True, text=True)
    assert p.returncode == 0, "cannot mount a tmpfs for the cache (needs root): " + p.stderr
    yield str(d)
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_enospc_on_a_full_cache_filesystem(account, emulator, mounter, tiny_cache):
    rng = random.Random(22)
    m = mounter(account, options=["cache_dir=" + tiny_cache, "cache_max_size=20M"],
                allow_errors=True)
    closed = {}
    failed_at = None
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
    assert len(closed) >= 6, "ENOSPC came before the bound was reached (%d files)" % len(closed)
    m.unmount(timeout=300)
    t = live(emulator, account.user)
    bad = [n for n, d in closed.items() if n not in t or t[n]["md5"] != md5_bytes(d)]
    assert not bad, "closed files lost or corrupt: %r" % bad
