"""The mount's write path against the emulator: what real tools write lands
on the service with the right names, sizes, MD5s and times; namespace edge
cases; durability across kill -9; fsync; the cache bound.

Each test checks the service's view (emulator.tree) after an unmount (which
waits for pending uploads) or an fsync, and unmounts with exit status 0.
"""
import hashlib
import os
import signal
import sqlite3
import subprocess

import pytest

from helpers import (md5_bytes, md5_file, partial_names, partial_upload_bytes, rclone_for,
                           wait_for)

MiB = 1 << 20


def run(*args, check=True, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 600)
    p = subprocess.run(list(args), **kw)
    if check and p.returncode:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(map(str, args)), p.returncode,
                                                      p.stdout.decode(errors="replace"),
                                                      p.stderr.decode(errors="replace")))
    return p


def server_files(emulator, user):
    """{path: entry} of the live files the service holds (server names)."""
    return {e["path"]: e for e in emulator.tree(user)
            if e["type"] == "file" and not e["deleted"] and e["md5"]}


def server_dirs(emulator, user):
    return {e["path"] for e in emulator.tree(user) if e["type"] == "folder" and not e["deleted"]}


def make_tree(root, seed=0):
    import random
    rnd = random.Random(seed)
    os.makedirs(root)
    files = {}
    for d in ("", "sub", "sub/deeper", "other dir", "empty"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for i, rel in enumerate(["a.txt", "sub/b.bin", "sub/deeper/c", "other dir/d e.txt",
                             "colon:name", "q?mark", "big.bin", "zero"]):
        size = {"big.bin": 3 * MiB + 11, "zero": 0}.get(rel.split("/")[-1], 1000 * i + 7)
        data = rnd.randbytes(size)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        os.utime(os.path.join(root, rel), (1600000000 + i, 1600000000 + i))
        files[rel] = md5_bytes(data)
    return files


ENCODED = {"colon:name": "colon\uff1aname", "q?mark": "q\uff1fmark"}


def check_on_server(emulator, user, files, prefix=""):
    srv = server_files(emulator, user)
    for rel, md5 in files.items():
        parts = rel.split("/")
        parts[-1] = ENCODED.get(parts[-1], parts[-1])
        path = prefix + "/".join(parts)
        assert path in srv, "%s not on the service; it has %s" % (path, sorted(srv))
        assert srv[path]["md5"] == md5, path
    return srv


def test_cp_a_tree(account, emulator, mounter, tmp_path):
    src = str(tmp_path / "src")
    files = make_tree(src)
    m = mounter(account)
    run("cp", "-a", src, os.path.join(m.path, "copy"))
    # Visible at once, content and times, while uploads are pending.
    run("diff", "-r", src, os.path.join(m.path, "copy"))
    st = os.stat(os.path.join(m.path, "copy", "sub", "b.bin"))
    assert int(st.st_mtime) == 1600000001
    m.unmount()
    srv = check_on_server(emulator, account.user, files, "copy/")
    assert srv["copy/sub/b.bin"]["modified"] == 1600000001
    assert "copy/empty" in server_dirs(emulator, account.user)
    # A fresh mount (another cache) reads it back identically.
    m2 = mounter(account, options=["cache_dir=" + str(tmp_path / "cache2")])
    run("diff", "-r", src, os.path.join(m2.path, "copy"))
    m2.unmount()


def test_rsync_a_tree_and_rclone_reads_it(account, emulator, mounter, tmp_path):
    src = str(tmp_path / "src")
    files = make_tree(src, seed=1)
    m = mounter(account)
    run("rsync", "-a", src + "/", os.path.join(m.path, "r") + "/")
    run("diff", "-r", src, os.path.join(m.path, "r"))
    # A second rsync finds nothing to do (sizes and times match).
    p = run("rsync", "-a", "--itemize-changes", src + "/", os.path.join(m.path, "r") + "/")
    assert b">f" not in p.stdout, p.stdout
    # Modify one file and rsync again: rsync's temp file + rename over it.
    with open(os.path.join(src, "a.txt"), "ab") as f:
        f.write(b"more")
    with open(os.path.join(src, "a.txt"), "rb") as f:
        files["a.txt"] = md5_bytes(f.read())
    run("rsync", "-a", src + "/", os.path.join(m.path, "r") + "/")
    m.unmount()
    check_on_server(emulator, account.user, files, "r/")
    # rclone 1.60 sees the same names and MD5s.
    rc = rclone_for(emulator, account, tmp_path / "rc")
    out = rc.run("md5sum", "jc:r").out
    got = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}
    assert got == files


def test_tar_x_and_d(account, emulator, mounter, tmp_path):
    src = str(tmp_path / "src")
    make_tree(src, seed=2)
    tarball = str(tmp_path / "t.tar")
    run("tar", "-C", src, "-cf", tarball, ".")
    m = mounter(account)
    dst = os.path.join(m.path, "t")
    os.mkdir(dst)
    run("tar", "-C", dst, "-xf", tarball)
    run("tar", "-C", dst, "-df", tarball)
    m.unmount()
    m = mounter(account)
    run("tar", "-C", os.path.join(m.path, "t"), "-df", tarball)
    m.unmount()


def test_sqlite_database(account, emulator, mounter):
    m = mounter(account)
    db = os.path.join(m.path, "app.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    with con:
        con.executemany("INSERT INTO t(v) VALUES(?)", [("row %d" % i,) for i in range(5000)])
    con.execute("UPDATE t SET v = 'changed' WHERE k % 7 = 0")
    con.commit()
    con.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT count(*) FROM t WHERE v = 'changed'").fetchone() == (714,)
    con.close()
    local = md5_file(db)
    m.unmount()
    srv = server_files(emulator, account.user)
    assert srv["app.db"]["md5"] == local
    m = mounter(account)
    con = sqlite3.connect(os.path.join(m.path, "app.db"))
    assert con.execute("SELECT count(*) FROM t").fetchone() == (5000,)
    con.close()
    m.unmount()


def test_rename_unlink_rmdir(account, emulator, mounter):
    emulator.seed([{"path": "d/old", "content": "old content"},
                   {"path": "d/victim", "content": "to be replaced"},
                   {"path": "d/Keep", "content": "keep"},
                   {"path": "full/x", "content": "x"}], user=account.user)
    m = mounter(account)
    d = os.path.join(m.path, "d")
    # rename over an existing file replaces it
    os.rename(os.path.join(d, "old"), os.path.join(d, "victim"))
    assert open(os.path.join(d, "victim")).read() == "old content"
    assert not os.path.exists(os.path.join(d, "old"))
    # case-only rename
    os.rename(os.path.join(d, "victim"), os.path.join(d, "VICTIM"))
    assert sorted(os.listdir(d)) == ["Keep", "VICTIM"]
    # a name that differs only in case from another entry: EEXIST
    with pytest.raises(FileExistsError):
        os.rename(os.path.join(d, "VICTIM"), os.path.join(d, "keep"))
    with pytest.raises(FileExistsError):
        open(os.path.join(d, "KEEP"), "x")
    with pytest.raises(FileExistsError):
        os.mkdir(os.path.join(d, "kEEP"))
    # too long
    with pytest.raises(OSError) as e:
        open(os.path.join(d, "n" * 256), "w")
    assert e.value.errno == 36
    # a new file renamed while its upload is pending, then a directory rename
    with open(os.path.join(d, "new"), "w") as f:
        f.write("fresh")
    os.rename(os.path.join(d, "new"), os.path.join(d, "renamed"))
    os.rename(d, os.path.join(m.path, "d2"))
    d2 = os.path.join(m.path, "d2")
    assert open(os.path.join(d2, "renamed")).read() == "fresh"
    # unlink a pending new file: it never reaches the service
    with open(os.path.join(d2, "ephemeral"), "w") as f:
        f.write("gone soon")
    os.unlink(os.path.join(d2, "ephemeral"))
    # rmdir: non-empty refused, empty removed
    with pytest.raises(OSError) as e:
        os.rmdir(os.path.join(m.path, "full"))
    assert e.value.errno == 39
    os.unlink(os.path.join(m.path, "full", "x"))
    os.rmdir(os.path.join(m.path, "full"))
    os.mkdir(os.path.join(m.path, "made"))
    m.unmount()
    srv = server_files(emulator, account.user)
    assert set(srv) == {"d2/VICTIM", "d2/Keep", "d2/renamed"}, sorted(srv)
    assert srv["d2/VICTIM"]["md5"] == md5_bytes(b"old content")
    dirs = server_dirs(emulator, account.user)
    assert "full" not in dirs and "d" not in dirs and "made" in dirs
    assert emulator.stats()["requests"]["upload"] >= 1


def test_random_writes_append_truncate(account, emulator, mounter):
    """Writes into an existing file whose content was never read: the write
    returns at once, the rest of the file is fetched before the upload."""
    emulator.seed([{"path": "f", "size": 5 * MiB, "fill": "random"}], user=account.user)
    m = mounter(account)
    p = os.path.join(m.path, "f")
    # The reference bytes, read through this mount; the writes go through
    # another one with an empty cache.
    with open(p, "rb") as f:
        rc_bytes = bytearray(f.read())
    m.unmount()
    m = mounter(account, options=["cache_dir=" + os.path.join(account.home, "cache-b")])
    p = os.path.join(m.path, "f")
    emulator.reset_stats()
    with open(p, "r+b") as f:
        f.seek(3 * MiB)
        f.write(b"X" * 100)
    rc_bytes[3 * MiB:3 * MiB + 100] = b"X" * 100
    with open(p, "ab") as f:                    # O_APPEND
        f.write(b"tail")
    rc_bytes += b"tail"
    with open(p, "r+b") as f:
        f.truncate(4 * MiB)
    del rc_bytes[4 * MiB:]
    os.truncate(p, 4 * MiB + 10)                # truncate(2) extends with zeros
    rc_bytes += bytes(10)
    with open(p, "rb") as f:
        assert f.read() == bytes(rc_bytes)
    m.unmount()
    srv = server_files(emulator, account.user)
    assert srv["f"]["size"] == len(rc_bytes)
    assert srv["f"]["md5"] == md5_bytes(bytes(rc_bytes))


def test_touch_clean_file_needs_no_upload(account, emulator, mounter):
    emulator.seed([{"path": "t", "content": "time me"}], user=account.user)
    m = mounter(account)
    emulator.reset_stats()
    os.utime(os.path.join(m.path, "t"), (1500000000, 1500000000))
    assert int(os.stat(os.path.join(m.path, "t")).st_mtime) == 1500000000
    m.unmount()
    st = emulator.stats()
    assert st["requests"]["upload"] == 0 and st["requests"]["allocate"] == 0
    assert st["commands"].get("cphash", 0) == 1, st["commands"]
    assert server_files(emulator, account.user)["t"]["modified"] == 1500000000


def test_fsync_waits_for_upload(account, emulator, mounter):
    m = mounter(account)
    data = os.urandom(MiB + 5)
    fd = os.open(os.path.join(m.path, "synced"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    # Confirmed by the service before fsync returned.
    srv = server_files(emulator, account.user)
    assert srv["synced"]["md5"] == md5_bytes(data)
    os.close(fd)
    m.unmount()


def test_visible_while_upload_pending(account, emulator, mounter):
    emulator.set_knobs(bandwidth=256 * 1024, bandwidth_kinds="upload")
    try:
        m = mounter(account, options=["unmount_wait=120"])
        old = partial_names(emulator)
        data = os.urandom(2 * MiB)
        with open(os.path.join(m.path, "slow"), "wb") as f:
            f.write(data)
        # Another process sees it at once, with its content.
        p = run("md5sum", os.path.join(m.path, "slow"))
        assert p.stdout.split()[0].decode() == md5_bytes(data)
        assert "slow" not in server_files(emulator, account.user)
        # A listing of the service meanwhile (the upload under way) must not hide it.
        wait_for(lambda: partial_upload_bytes(emulator, old) > 0, 60, "the upload to start")
        assert "slow" in os.listdir(m.path)
        m.unmount()     # waits for the upload
    finally:
        emulator.reset_knobs()
    assert server_files(emulator, account.user)["slow"]["md5"] == md5_bytes(data)


def test_kill_9_then_remount_uploads(account, emulator, mounter):
    m = mounter(account)
    payload = {"k%d" % i: os.urandom(100000 + i) for i in range(5)}
    for name, data in payload.items():
        with open(os.path.join(m.path, name), "wb") as f:
            f.write(data)
    # close() returned: durable. Kill before the write-back delay ends.
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait()
    m.kill()
    assert not server_files(emulator, account.user)
    m = mounter(account)
    # Usable at once, the files there before their upload resumes.
    for name, data in payload.items():
        with open(os.path.join(m.path, name), "rb") as f:
            assert f.read() == data
    m.unmount()
    srv = server_files(emulator, account.user)
    for name, data in payload.items():
        assert srv[name]["md5"] == md5_bytes(data)


def test_changes_beyond_the_bound_are_kept(account, emulator, mounter):
    """A file larger than cache_max_size is writable (its upload cannot start
    before close()); clean content is what the bound evicts."""
    emulator.seed([{"path": "clean.bin", "size": 2 * MiB}], user=account.user)
    m = mounter(account, options=["cache_max_size=1M"])
    with open(os.path.join(m.path, "clean.bin"), "rb") as f:
        f.read()
    data = os.urandom(3 * MiB)
    with open(os.path.join(m.path, "big"), "wb") as f:
        f.write(data)
    out = m.unmount()
    assert "exceed the cache bound" in out
    assert server_files(emulator, account.user)["big"]["md5"] == md5_bytes(data)


def test_conflict_keeps_both(account, emulator, mounter):
    emulator.seed([{"path": "c.txt", "content": "base"}], user=account.user)
    m = mounter(account, options=["dir_cache_time=1"])
    p = os.path.join(m.path, "c.txt")
    with open(p) as f:
        assert f.read() == "base"
    with open(p, "r+") as f:
        emulator.seed([{"path": "c.txt", "content": "theirs"}], user=account.user)
        f.write("MINE")
    m.unmount()
    srv = server_files(emulator, account.user)
    assert srv["c.txt"]["md5"] == md5_bytes(b"theirs")
    conflicts = [p for p in srv if p.startswith("c (conflict ")]
    assert len(conflicts) == 1 and srv[conflicts[0]]["md5"] == md5_bytes(b"MINE")


@pytest.mark.skipif(os.environ.get("JOTTAFS_SLOW_TESTS") != "1",
                    reason="writes and uploads 4 GiB; set JOTTAFS_SLOW_TESTS=1")
def test_file_over_4_gib(account, emulator, mounter):
    m = mounter(account, options=["cache_max_size=20G", "unmount_wait=600"])
    p = os.path.join(m.path, "huge")
    size = (4 << 30) + MiB
    h = hashlib.md5()
    chunk = os.urandom(8 * MiB)
    with open(p, "wb") as f:
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            h.update(chunk[:n])
            left -= n
    assert os.stat(p).st_size == size
    m.unmount(timeout=900)
    srv = server_files(emulator, account.user)
    assert srv["huge"]["size"] == size and srv["huge"]["md5"] == h.hexdigest()


@pytest.mark.parametrize("hard", [False, True])
def test_unlink_goes_to_trash_unless_hard_delete(account, emulator, mounter, hard):
    emulator.seed([{"path": "f", "content": "x"}, {"path": "d/g", "content": "y"}],
                  user=account.user)
    m = mounter(account, options=["hard_delete"] if hard else [])
    os.unlink(os.path.join(m.path, "f"))
    os.unlink(os.path.join(m.path, "d", "g"))
    os.rmdir(os.path.join(m.path, "d"))
    assert os.listdir(m.path) == []
    m.unmount()
    tree = {e["path"]: e for e in emulator.tree(account.user)}
    if hard:
        assert "f" not in tree and "d" not in tree
    else:
        assert tree["f"]["deleted"] and tree["d"]["deleted"]
