"""Server-side copy (issue 11): copy_file_range of a whole clean file into a
new or emptied file is a `cp=` on the service, so `cp` of a file that is not
in the cache moves no content; partial ranges and dirty sources go through
the mount as before, with the same result."""
import os
import subprocess

from helpers import live, md5_bytes, md5_file, wait_server

MiB = 1 << 20


def moved(emulator, before):
    after = emulator.stats()
    return (after["download_bytes"] - before["download_bytes"],
            after["upload_bytes"] - before["upload_bytes"])


def test_cp_of_uncached_file_moves_no_content(account, emulator, mounter):
    emulator.seed([{"path": "big.bin", "size": 20 * 1000 * 1000}], user=account.user)
    md5 = live(emulator, account.user)["big.bin"]["md5"]
    m = mounter(account)
    src, dst = os.path.join(m.path, "big.bin"), os.path.join(m.path, "copy.bin")
    before = emulator.stats()
    # coreutils cp (Debian 12: 9.1) uses copy_file_range.
    subprocess.run(["cp", src, dst], check=True, timeout=300)
    down, up = moved(emulator, before)
    assert down + up < 1 * MiB, "cp moved %d bytes down, %d up" % (down, up)
    assert emulator.stats()["commands"].get("cp", 0) - before["commands"].get("cp", 0) == 1
    srv = live(emulator, account.user)
    assert srv["copy.bin"]["md5"] == md5 and srv["copy.bin"]["size"] == 20 * 1000 * 1000
    assert os.stat(dst).st_size == 20 * 1000 * 1000
    assert os.getxattr(dst, "user.jottacloud.state") == b"synced"
    # cp -p too: the times are set on the service's copy, still no content.
    dst2 = os.path.join(m.path, "copy-p.bin")
    subprocess.run(["cp", "-p", src, dst2], check=True, timeout=300)
    assert int(os.stat(dst2).st_mtime) == int(os.stat(src).st_mtime)
    down, up = moved(emulator, before)
    assert down + up < 1 * MiB, "cp -p moved %d bytes down, %d up" % (down, up)
    assert live(emulator, account.user)["copy-p.bin"]["modified"] == int(os.stat(src).st_mtime)
    # Over an existing file (O_TRUNC): copied on the service again.
    subprocess.run(["cp", src, dst2], check=True, timeout=300)
    assert emulator.stats()["commands"].get("cp", 0) - before["commands"].get("cp", 0) == 3
    down, up = moved(emulator, before)
    assert down + up < 1 * MiB, "cp over a file moved %d bytes down, %d up" % (down, up)
    assert live(emulator, account.user)["copy-p.bin"]["md5"] == md5
    # The copy reads back the service's content through the mount.
    assert md5_file(dst) == md5
    m.unmount()
    # Nothing is uploaded at unmount either.
    down, up = moved(emulator, before)
    assert up < 1 * MiB, up


def test_partial_and_dirty_copies_go_through_the_mount(account, emulator, mounter):
    m = mounter(account)
    data = os.urandom(3 * MiB + 5)
    src = os.path.join(m.path, "dirty.bin")
    with open(src, "wb") as f:
        f.write(data)
    # A source whose upload is still pending: copied through the mount.
    subprocess.run(["cp", src, os.path.join(m.path, "c1.bin")], check=True)
    with open(os.path.join(m.path, "c1.bin"), "rb") as f:
        assert f.read() == data
    fd = os.open(src, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    # A partial range of a clean file: through the mount.
    with open(src, "rb") as fi, open(os.path.join(m.path, "c2.bin"), "wb") as fo:
        n = os.copy_file_range(fi.fileno(), fo.fileno(), MiB, 1000)
        while n < MiB:
            n += os.copy_file_range(fi.fileno(), fo.fileno(), MiB - n, 1000 + n)
    with open(os.path.join(m.path, "c2.bin"), "rb") as f:
        assert f.read() == data[1000:1000 + MiB]
    m.unmount()
    wait_server(emulator, account.user, "c1.bin", md5_bytes(data))
    wait_server(emulator, account.user, "c2.bin", md5_bytes(data[1000:1000 + MiB]))


def test_overwriting_an_uncached_file_fetches_nothing(account, emulator, mounter):
    """`> file` (O_TRUNC) of a file that is not in the cache: none of its old
    content is needed, none is downloaded."""
    emulator.seed([{"path": "old.bin", "size": 20 * 1000 * 1000}], user=account.user)
    m = mounter(account)
    path = os.path.join(m.path, "old.bin")
    before = emulator.stats()
    with open(path, "wb") as f:
        f.write(b"new\n")
        f.flush()
        os.fsync(f.fileno())
    down, up = moved(emulator, before)
    assert down < 1 * MiB, "overwriting downloaded %d bytes of the old content" % down
    assert live(emulator, account.user)["old.bin"]["md5"] == md5_bytes(b"new\n")
    m.unmount()
