"""The MD5 of big files written through the mount (issue 9, item 4): past
16 MiB the running MD5 of sequentially written content is extended by a
background hasher while the writer goes on, and writeback of the written
bytes starts every 8 MiB. Whatever the write pattern, the MD5 the upload
announces is the content's: a sequential file, one rewritten below what is
hashed while it grows, and a big server file changed at its start while the
rest of its base is still being fetched. Uploads run slowed (latency)."""
import hashlib
import os
import random

from helpers import MiB, knobs, live, md5_bytes, wait_server


def _write_seq(path, data, chunk=MiB):
    with open(path, "wb") as f:
        for i in range(0, len(data), chunk):
            f.write(data[i:i + chunk])


def test_sequential_big_file(account, emulator, mounter):
    data = random.Random(1).randbytes(72 * MiB + 12345)
    m = mounter(account)
    with knobs(emulator, latency_ms=50, latency_kinds="allocate,upload"):
        _write_seq(os.path.join(m.path, "seq.bin"), data)
        wait_server(emulator, account.user, "seq.bin", md5_bytes(data), timeout=180)
    with open(os.path.join(m.path, "seq.bin"), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == md5_bytes(data)
    m.unmount()


def test_rewrite_below_hashed_while_growing(account, emulator, mounter):
    rng = random.Random(2)
    data = bytearray(rng.randbytes(48 * MiB))
    m = mounter(account)
    p = os.path.join(m.path, "rw.bin")
    with knobs(emulator, latency_ms=50, latency_kinds="allocate,upload"):
        with open(p, "wb") as f:
            for i in range(0, 40 * MiB, MiB):
                f.write(data[i:i + MiB])
                if i == 30 * MiB:
                    # back below what the hasher has seen, then on again
                    patch = rng.randbytes(3 * MiB)
                    data[5 * MiB:8 * MiB] = patch
                    f.seek(5 * MiB)
                    f.write(patch)
                    f.seek(i + MiB)
            f.write(data[40 * MiB:])
        wait_server(emulator, account.user, "rw.bin", md5_bytes(bytes(data)), timeout=180)
    m.unmount()


def test_big_base_changed_at_its_start(account, emulator, mounter):
    emulator.seed([{"path": "base.bin", "size": 64 * MiB, "fill": "random"}],
                  user=account.user)
    base = emulator.content("base.bin", user=account.user)
    assert len(base) == 64 * MiB
    m = mounter(account)
    new = bytearray(base)
    head = random.Random(3).randbytes(24 * MiB)
    new[:len(head)] = head
    with knobs(emulator, latency_ms=50, latency_kinds="download,allocate,upload"):
        with open(os.path.join(m.path, "base.bin"), "r+b") as f:
            for i in range(0, len(head), MiB):
                f.write(head[i:i + MiB])
        wait_server(emulator, account.user, "base.bin", md5_bytes(bytes(new)), timeout=240)
    x = live(emulator, account.user)["base.bin"]
    assert x["size"] == 64 * MiB, x
    m.unmount()
