"""The write path's namespace and file semantics (issue 4), each asserted with
the exact errno and with what the emulator stores.

Contract (design.md section 3): case-insensitive names (EEXIST for a name that
differs only in case), ENAMETOOLONG past 255 UTF-16 units of the encoded name,
ENOTEMPTY, rename over a target replaces it, case-only renames work,
symlink/link/mknod EPERM, setxattr ENOTSUP, chmod/chown accepted without
effect, utimens without re-upload, fsync returns after the server confirmed
the content, unlink/rename of files whose upload is pending, trash vs
-o hard_delete, conflicts.
"""
import base64
import ctypes
import errno
import os
import re
import stat
import subprocess
import time
from datetime import datetime, timezone

from helpers import (MiB, clear_cache, encode_name, errno_of, knobs, live, md5_bytes,
                           md5_file, partial_names, partial_upload_bytes, read_file, tree,
                           wait_for, wait_idle, wait_steady, write_file)


def fsync_write(path, data, mode="wb"):
    """Write @data, fsync (returns once the server confirmed), close."""
    with open(path, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def J(m, *parts):
    return os.path.join(m.path, *parts)


# ------------------------------------------------------------------ create, fsync

def test_fsync_returns_after_server_confirmed(account, emulator, mounter):
    """At fsync's return the emulator already holds the content (no polling)."""
    m = mounter(account)
    data = os.urandom(3 * MiB + 5)
    with knobs(emulator, latency_ms=700, latency_kinds="allocate,upload"):
        t0 = time.monotonic()
        with open(J(m, "synced.bin"), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            took = time.monotonic() - t0
            x = live(emulator, account.user).get("synced.bin")
            assert x is not None, "fsync returned before the file was on the server"
            assert x["md5"] == md5_bytes(data) and x["size"] == len(data), x
            assert x["latest_state"] in (None, "COMPLETED"), x
    assert took >= 0.7, "fsync took %.2f s: it cannot have waited for the slow server" % took
    # fsync of a clean file is immediate and sends nothing.
    emulator.reset_stats()
    with open(J(m, "synced.bin"), "rb") as f:
        t0 = time.monotonic()
        os.fsync(f.fileno())
        assert time.monotonic() - t0 < 0.5
    s = emulator.stats()
    assert s["requests"]["allocate"] == 0 and s["requests"]["upload"] == 0, s["requests"]
    m.unmount()




def test_fsync_waits_for_the_content_it_flushes(account, emulator, mounter):
    """An older version of the file is being sent (its allocate is slow)
    when the file changes and is fsync'd: fsync may only return once the
    server holds the new content, not when the older upload lands."""
    m = mounter(account)
    v1 = os.urandom(MiB)
    fsync_write(J(m, "known.bin"), v1)          # the service knows v1: instant uploads
    with knobs(emulator, latency_ms=3000, latency_kinds="allocate"):
        before = emulator.stats()["requests"]["allocate"]
        write_file(J(m, "f.bin"), v1)           # version 1 of f.bin, sent after 2 s
        wait_for(lambda: emulator.stats()["requests"]["allocate"] > before, 30,
                 "the allocate of version 1 to be in flight")
        with open(J(m, "f.bin"), "r+b") as f:
            f.seek(100)
            f.write(b"version two")
            f.flush()
            os.fsync(f.fileno())
            x = live(emulator, account.user).get("f.bin")
    v2 = bytearray(v1)
    v2[100:111] = b"version two"
    assert x is not None and x["md5"] == md5_bytes(bytes(v2)), (
        "fsync returned while the server held %s" % (
            "version 1" if x and x["md5"] == md5_bytes(v1) else repr(x)))
    m.unmount()


def test_changes_while_an_older_version_uploads_are_not_a_conflict(account, emulator, mounter):
    """Version 1 is being sent (slow allocate) when version 2 is closed;
    version 1 lands; then version 3 replaces the queued version 2. Nobody
    else wrote: no conflict copy, and version 3 is what the server holds."""
    m = mounter(account)
    v1 = os.urandom(MiB)
    fsync_write(J(m, "known.bin"), v1)          # the service knows v1: instant uploads
    with knobs(emulator, latency_ms=3000, latency_kinds="allocate"):
        before = emulator.stats()["requests"]["allocate"]
        write_file(J(m, "f.bin"), v1)
        wait_for(lambda: emulator.stats()["requests"]["allocate"] > before, 30,
                 "the allocate of version 1 to be in flight")
        with open(J(m, "f.bin"), "r+b") as f:
            f.write(b"v2")
        wait_for(lambda: (live(emulator, account.user).get("f.bin") or {}).get("md5")
                 == md5_bytes(v1), 30, "version 1 to land")
    with open(J(m, "f.bin"), "r+b") as f:
        f.write(b"v3")
    m.unmount()
    t = live(emulator, account.user)
    conflicts = sorted(p for p in t if "conflict" in p)
    assert not conflicts, "false conflict: %r" % conflicts
    assert t["f.bin"]["md5"] == md5_bytes(b"v3" + v1[2:])

def test_rewrite_right_after_fsync_is_not_a_conflict(account, emulator, mounter):
    """fsync (upload confirmed), then at once a new change: nobody else
    touched the server, so there must be no conflict copy, and the last
    content wins. 20 rounds, because the window is short."""
    m = mounter(account)
    want = {}
    for i in range(20):
        p = J(m, "r%02d.txt" % i)
        fsync_write(p, b"first version %d\n" % i)
        with open(p, "r+b") as f:
            f.write(b"SECOND")
        want["r%02d.txt" % i] = b"SECOND" + (b"first version %d\n" % i)[6:]
    m.unmount()
    t = live(emulator, account.user)
    conflicts = sorted(p for p in t if "conflict" in p)
    wrong = sorted(n for n, d in want.items() if t.get(n, {}).get("md5") != md5_bytes(d))
    assert not conflicts and not wrong, (
        "false conflicts: %r; files whose last content is not at their name: %r" % (
            conflicts, wrong))

def test_fsync_eio_when_upload_is_refused(account, emulator, mounter):
    """Quota full (507): fsync fails with EIO, the data goes to lost+found, not away."""
    m = mounter(account, allow_errors=True)
    data = os.urandom(2 * MiB)
    with knobs(emulator, capacity=MiB):
        f = open(J(m, "toobig.bin"), "wb")
        f.write(data)
        f.flush()
        t0 = time.monotonic()
        try:
            os.fsync(f.fileno())
            got = None
        except OSError as e:
            got = e.errno
        took = time.monotonic() - t0
        try:
            f.close()
        except OSError:
            pass
    assert got == errno.EIO, "fsync of a refused upload: errno %r after %.1f s" % (got, took)
    assert "toobig.bin" not in live(emulator, account.user)
    m.unmount()
    found = [os.path.join(dp, n) for dp, _, fs in os.walk(account.cache_home) for n in fs
             if "lost+found" in dp]
    assert any(md5_file(p) == md5_bytes(data) for p in found), \
        "the refused content is not in lost+found: %r" % found


def test_new_file_visible_to_other_process_while_upload_pending(account, emulator, mounter):
    m = mounter(account)
    data = os.urandom(6 * MiB)
    with knobs(emulator, bandwidth=MiB, bandwidth_kinds="upload"):
        write_file(J(m, "pending.bin"), data)
        # Another process: ls, stat, md5sum see the local content at once.
        p = subprocess.run(["md5sum", J(m, "pending.bin")], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and p.stdout.split()[0] == md5_bytes(data), p
        p = subprocess.run(["stat", "-c", "%s", J(m, "pending.bin")], capture_output=True,
                           text=True)
        assert p.stdout.strip() == str(len(data))
        assert "pending.bin" in subprocess.run(["ls", m.path], capture_output=True,
                                               text=True).stdout.split("\n")
        x = live(emulator, account.user).get("pending.bin")
        assert x is None or x["md5"] != md5_bytes(data) or x["latest_state"] == "INCOMPLETE", \
            "the upload was not pending (bandwidth knob ignored?): %r" % x
    m.unmount()
    assert live(emulator, account.user)["pending.bin"]["md5"] == md5_bytes(data)


# ------------------------------------------------------------------ what the service cannot hold

def test_symlink_link_mknod_eperm(mount):
    m = mount
    write_file(J(m, "target"), b"t")
    assert errno_of(os.symlink, "target", J(m, "sl")) == errno.EPERM
    assert errno_of(os.link, J(m, "target"), J(m, "hl")) == errno.EPERM
    assert errno_of(os.mknod, J(m, "fifo"), stat.S_IFIFO | 0o644) == errno.EPERM
    assert errno_of(os.mkfifo, J(m, "fifo2")) == errno.EPERM
    assert errno_of(os.mknod, J(m, "chr"), stat.S_IFCHR | 0o644, os.makedev(1, 3)) == errno.EPERM
    assert sorted(os.listdir(m.path)) == ["target"]
    m.unmount()


def test_setxattr_enotsup(mount):
    m = mount
    write_file(J(m, "x.txt"), b"x")
    assert errno_of(os.setxattr, J(m, "x.txt"), "user.foo", b"bar") == errno.ENOTSUP
    assert errno_of(os.setxattr, m.path, "user.foo", b"bar") == errno.ENOTSUP
    m.unmount()


def test_chmod_chown_accepted_without_effect(account, emulator, mounter):
    m = mounter(account)
    fsync_write(J(m, "f.txt"), b"content")
    os.mkdir(J(m, "d"))
    emulator.reset_stats()
    st0 = os.stat(J(m, "f.txt"))
    os.chmod(J(m, "f.txt"), 0o600)
    os.chmod(J(m, "d"), 0o700)
    os.chown(J(m, "f.txt"), 1234, 1234)
    os.chown(J(m, "d"), os.getuid(), os.getgid())
    st = os.stat(J(m, "f.txt"))
    assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(st0.st_mode) == 0o644
    assert (st.st_uid, st.st_gid) == (st0.st_uid, st0.st_gid)
    assert stat.S_IMODE(os.stat(J(m, "d")).st_mode) == 0o755
    assert int(st.st_mtime) == int(st0.st_mtime)
    s = emulator.stats()
    assert s["requests"]["allocate"] == 0 and s["requests"]["upload"] == 0 \
        and s["requests"]["command"] == 0, s["requests"]
    m.unmount()


# ------------------------------------------------------------------ names

def test_case_collisions_give_eexist(account, emulator, mounter):
    emulator.seed([{"path": "Seeded.txt", "content": "from the server"}], user=account.user)
    m = mounter(account)
    fsync_write(J(m, "Foo.txt"), b"the real Foo")
    write_file(J(m, "Pending.txt"), b"not uploaded yet")   # upload pending
    os.mkdir(J(m, "Dir"))
    write_file(J(m, "other.txt"), b"other")
    W = os.O_WRONLY | os.O_CREAT
    assert errno_of(os.open, J(m, "foo.txt"), W | os.O_EXCL) == errno.EEXIST
    assert errno_of(os.open, J(m, "FOO.TXT"), W) == errno.EEXIST
    assert errno_of(os.open, J(m, "pending.TXT"), W) == errno.EEXIST
    assert errno_of(os.open, J(m, "seeded.txt"), W) == errno.EEXIST
    assert errno_of(os.open, J(m, "dir"), W) == errno.EEXIST
    assert errno_of(os.mkdir, J(m, "foo.TXT")) == errno.EEXIST
    assert errno_of(os.mkdir, J(m, "DIR")) == errno.EEXIST
    assert errno_of(os.mkdir, J(m, "SEEDED.txt")) == errno.EEXIST
    assert errno_of(os.rename, J(m, "other.txt"), J(m, "FOO.txt")) == errno.EEXIST
    assert errno_of(os.rename, J(m, "other.txt"), J(m, "seeded.TXT")) == errno.EEXIST
    assert errno_of(os.rename, J(m, "Dir"), J(m, "pending.txt")) in (errno.EEXIST, errno.ENOTDIR)
    # Nothing was overwritten, locally or on the server.
    assert read_file(J(m, "Foo.txt")) == b"the real Foo"
    assert read_file(J(m, "other.txt")) == b"other"
    assert read_file(J(m, "Seeded.txt")) == b"from the server"
    assert sorted(os.listdir(m.path)) == ["Dir", "Foo.txt", "Pending.txt", "Seeded.txt",
                                          "other.txt"]
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == ["Dir", "Foo.txt", "Pending.txt", "Seeded.txt", "other.txt"], sorted(t)
    assert emulator.content("Foo.txt", user=account.user) == b"the real Foo"
    assert emulator.content("Seeded.txt", user=account.user) == b"from the server"


# Pairs Java's String.equalsIgnoreCase (the service's comparison) takes as
# equal while a plain lower-case map does not: dotless i, long s, final
# sigma, micro sign, Kelvin sign, dotted capital I.
LOOKALIKES = [("\u0131", "i"), ("\u017f", "s"), ("\u03c2", "\u03c3"), ("\u00b5", "\u03bc"),
              ("\u212a", "k"), ("\u0130", "i")]


def test_java_case_lookalikes_give_eexist(account, emulator, mounter):
    """Issue 7 item 2: creating or renaming onto a name the service takes as
    equal gives EEXIST; before, the second upload replaced the first on the
    service while the mount showed two files."""
    m = mounter(account)
    W = os.O_WRONLY | os.O_CREAT
    names = []
    for i, (a, b) in enumerate(LOOKALIKES):
        first, second = "%d-%s.txt" % (i, a), "%d-%s.txt" % (i, b)
        fsync_write(J(m, first), first.encode())
        write_file(J(m, "src%d" % i), b"src")
        assert errno_of(os.open, J(m, second), W) == errno.EEXIST, (first, second)
        assert errno_of(os.mkdir, J(m, second)) == errno.EEXIST, (first, second)
        assert errno_of(os.rename, J(m, "src%d" % i), J(m, second)) == errno.EEXIST
        names += [first, "src%d" % i]
    assert sorted(os.listdir(m.path)) == sorted(names)
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == sorted(names), sorted(t)
    for i, (a, _) in enumerate(LOOKALIKES):
        first = "%d-%s.txt" % (i, a)
        assert emulator.content(first, user=account.user) == first.encode()


def test_case_only_rename(account, emulator, mounter):
    m = mounter(account)
    fsync_write(J(m, "a.txt"), b"case only")
    os.mkdir(J(m, "dir"))
    fsync_write(J(m, "dir", "in.txt"), b"inside")
    os.rename(J(m, "a.txt"), J(m, "A.txt"))
    os.rename(J(m, "dir"), J(m, "DIR"))
    assert sorted(os.listdir(m.path)) == ["A.txt", "DIR"]
    assert read_file(J(m, "A.txt")) == b"case only"
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == ["A.txt", "DIR", "DIR/in.txt"], sorted(t)
    assert t["A.txt"]["md5"] == md5_bytes(b"case only")
    assert t["A.txt"]["revision"] == 1


def test_enametoolong(account, emulator, mounter):
    m = mounter(account)
    ok = ["a" * 255, "?" * 255, "\u201b" * 127, "\U0001F600" * 127 + "a",
          os.fsdecode(b"\xff" * 85)]
    bad = ["a" * 256, "?" * 256, "\u201b" * 128, "\U0001F600" * 128,
           os.fsdecode(b"\xff" * 86)]
    for n in ok:
        enc = encode_name(n)
        assert len(enc.encode("utf-16-le")) // 2 <= 255
        fsync_write(os.path.join(os.fsencode(m.path), os.fsencode(n)), b"ok")
    for n in bad:
        p = os.path.join(os.fsencode(m.path), os.fsencode(n))
        assert errno_of(os.open, p, os.O_WRONLY | os.O_CREAT) == errno.ENAMETOOLONG, n[:8]
        assert errno_of(os.mkdir, p) == errno.ENAMETOOLONG, n[:8]
        assert errno_of(os.rename, J(m, "a" * 255), p) == errno.ENAMETOOLONG, n[:8]
    assert sorted(os.listdir(os.fsencode(m.path))) == sorted(os.fsencode(n) for n in ok)
    m.unmount()
    assert sorted(live(emulator, account.user)) == sorted(encode_name(n) for n in ok)


# ------------------------------------------------------------------ unlink, rmdir, trash

def test_unlink_rmdir_trash_and_errors(account, emulator, mounter):
    emulator.seed([{"path": "srvdir/child.txt", "content": "only on the server"}],
                  user=account.user)
    m = mounter(account)
    os.makedirs(J(m, "d", "sub"))
    fsync_write(J(m, "d", "sub", "f.txt"), b"f")
    fsync_write(J(m, "gone.txt"), b"to the trash")
    assert errno_of(os.rmdir, J(m, "d")) == errno.ENOTEMPTY
    assert errno_of(os.rmdir, J(m, "d", "sub")) == errno.ENOTEMPTY
    # A directory whose only child exists on the server (never listed here).
    assert errno_of(os.rmdir, J(m, "srvdir")) == errno.ENOTEMPTY
    # A directory whose only child is a pending upload.
    os.mkdir(J(m, "p"))
    write_file(J(m, "p", "pending.txt"), b"pending")
    assert errno_of(os.rmdir, J(m, "p")) == errno.ENOTEMPTY
    assert errno_of(os.rmdir, J(m, "gone.txt")) == errno.ENOTDIR
    assert errno_of(os.unlink, J(m, "d")) in (errno.EISDIR, errno.EPERM)
    assert errno_of(os.unlink, J(m, "nonexistent")) == errno.ENOENT
    assert errno_of(os.rmdir, J(m, "nonexistent")) == errno.ENOENT
    os.unlink(J(m, "gone.txt"))
    assert errno_of(os.stat, J(m, "gone.txt")) == errno.ENOENT
    os.unlink(J(m, "d", "sub", "f.txt"))
    os.rmdir(J(m, "d", "sub"))
    os.rmdir(J(m, "d"))
    assert sorted(os.listdir(m.path)) == ["p", "srvdir"]
    m.unmount()
    t = tree(emulator, account.user)
    # Default: trash tombstones, not hard deletes.
    assert t["gone.txt"]["deleted"] is not None, t.get("gone.txt")
    assert t["d"]["deleted"] is not None, t.get("d")
    assert sorted(live(emulator, account.user)) == ["p", "p/pending.txt", "srvdir",
                                                    "srvdir/child.txt"]


def test_hard_delete_leaves_nothing(account, emulator, mounter):
    m = mounter(account, options=["hard_delete"])
    fsync_write(J(m, "gone.txt"), b"hard")
    os.makedirs(J(m, "d", "e"))
    fsync_write(J(m, "d", "e", "f"), b"f")
    assert "gone.txt" in tree(emulator, account.user)
    os.unlink(J(m, "gone.txt"))
    os.unlink(J(m, "d", "e", "f"))
    os.rmdir(J(m, "d", "e"))
    os.rmdir(J(m, "d"))
    m.unmount()
    t = tree(emulator, account.user)
    assert t == {}, "hard_delete left tombstones or nodes: %r" % t


def test_unlink_of_pending_upload_sends_nothing(account, emulator, mounter):
    m = mounter(account)
    emulator.reset_stats()
    old = partial_names(emulator)
    # 1. unlinked right after close (inside the write-back delay).
    write_file(J(m, "quick.bin"), os.urandom(MiB))
    os.unlink(J(m, "quick.bin"))
    # 2. unlinked while the transfer runs (slow link).
    data = os.urandom(8 * MiB)
    with knobs(emulator, bandwidth=MiB, bandwidth_kinds="upload"):
        write_file(J(m, "slow.bin"), data)
        wait_for(lambda: partial_upload_bytes(emulator, old) > 0, 30, "the slow upload to start")
        os.unlink(J(m, "slow.bin"))
        # nothing may arrive now: wait until the daemon has nothing left to
        # upload and the cancelled transfer has stopped moving
        wait_idle(m)
        wait_steady(lambda: partial_upload_bytes(emulator, old), "the cancelled transfer")
        assert "quick.bin" not in live(emulator, account.user)
        assert "slow.bin" not in live(emulator, account.user)
    assert os.listdir(m.path) == []
    m.unmount()
    t = live(emulator, account.user)
    assert t == {}, t
    s = emulator.stats()
    assert s["upload_bytes"] < len(data), "the unlinked upload ran to its end: %d" % (
        s["upload_bytes"])


# ------------------------------------------------------------------ rename

def test_rename_file_on_server_and_over_existing(account, emulator, mounter):
    m = mounter(account)
    fsync_write(J(m, "a.txt"), b"content of a")
    fsync_write(J(m, "b.txt"), b"content of b")
    os.mkdir(J(m, "sub"))
    emulator.reset_stats()
    os.rename(J(m, "a.txt"), J(m, "sub", "moved?.txt"))
    assert read_file(J(m, "sub", "moved?.txt")) == b"content of a"
    assert errno_of(os.stat, J(m, "a.txt")) == errno.ENOENT
    # Over an existing target: the target is replaced.
    os.rename(J(m, "b.txt"), J(m, "sub", "moved?.txt"))
    assert read_file(J(m, "sub", "moved?.txt")) == b"content of b"
    assert sorted(os.listdir(m.path)) == ["sub"]
    assert os.listdir(J(m, "sub")) == ["moved?.txt"]
    s = emulator.stats()
    assert s["upload_bytes"] == 0, "a rename of an uploaded file re-uploaded it"
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == ["sub", "sub/moved\uff1f.txt"], sorted(t)
    assert t["sub/moved\uff1f.txt"]["md5"] == md5_bytes(b"content of b")


def test_rename_noreplace(account, mounter):
    m = mounter(account)
    write_file(J(m, "x"), b"x")
    write_file(J(m, "y"), b"y")
    libc = ctypes.CDLL(None, use_errno=True)
    RENAME_NOREPLACE = 1
    AT_FDCWD = -100
    r = libc.renameat2(AT_FDCWD, os.fsencode(J(m, "x")), AT_FDCWD, os.fsencode(J(m, "y")),
                       RENAME_NOREPLACE)
    assert r == -1 and ctypes.get_errno() == errno.EEXIST, (r, ctypes.get_errno())
    assert read_file(J(m, "y")) == b"y"
    r = libc.renameat2(AT_FDCWD, os.fsencode(J(m, "x")), AT_FDCWD, os.fsencode(J(m, "z")),
                       RENAME_NOREPLACE)
    assert r == 0 or ctypes.get_errno() == errno.EINVAL, ctypes.get_errno()
    m.unmount()


def test_rename_of_pending_upload_follows(account, emulator, mounter):
    m = mounter(account)
    old = partial_names(emulator)
    quick = os.urandom(300000)
    write_file(J(m, "quick.tmp"), quick)
    os.rename(J(m, "quick.tmp"), J(m, "quick.bin"))
    slow = os.urandom(6 * MiB)
    with knobs(emulator, bandwidth=2 * MiB, bandwidth_kinds="upload"):
        write_file(J(m, "slow.tmp"), slow)
        wait_for(lambda: partial_upload_bytes(emulator, old) > 0, 30, "the slow upload to start")
        os.mkdir(J(m, "dst"))
        os.rename(J(m, "slow.tmp"), J(m, "dst", "slow.bin"))
        assert read_file(J(m, "dst", "slow.bin")) == slow
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == ["dst", "dst/slow.bin", "quick.bin"], sorted(t)
    assert t["quick.bin"]["md5"] == md5_bytes(quick)
    assert t["dst/slow.bin"]["md5"] == md5_bytes(slow)


def test_rename_directory_with_contents(account, emulator, mounter):
    emulator.seed([{"path": "src/a/b/deep.txt", "content": "deep"},
                   {"path": "src/top.txt", "content": "top"},
                   {"path": "src/empty", "folder": True}], user=account.user)
    m = mounter(account)
    local = os.urandom(200000)
    write_file(J(m, "src", "a", "local.bin"), local)     # pending upload inside
    os.mkdir(J(m, "dst"))
    os.rename(J(m, "src"), J(m, "dst", "moved:dir"))
    assert errno_of(os.stat, J(m, "src")) == errno.ENOENT
    assert read_file(J(m, "dst", "moved:dir", "a", "b", "deep.txt")) == b"deep"
    assert read_file(J(m, "dst", "moved:dir", "a", "local.bin")) == local
    # Directories: over an empty one replaces it, over a non-empty one is ENOTEMPTY.
    os.makedirs(J(m, "full", "x"))
    os.mkdir(J(m, "emptytarget"))
    os.mkdir(J(m, "mover"))
    assert errno_of(os.rename, J(m, "mover"), J(m, "full")) == errno.ENOTEMPTY
    os.rename(J(m, "mover"), J(m, "emptytarget"))
    assert errno_of(os.rename, J(m, "emptytarget"), J(m, "dst", "moved:dir", "top.txt")) \
        == errno.ENOTDIR
    write_file(J(m, "file"), b"f")
    assert errno_of(os.rename, J(m, "file"), J(m, "full")) == errno.EISDIR
    m.unmount()
    t = live(emulator, account.user)
    base = "dst/moved\uff1adir"
    assert not [p for p in t if p.startswith("src")], sorted(t)
    assert t[base + "/a/b/deep.txt"]["md5"] == md5_bytes(b"deep")
    assert t[base + "/top.txt"]["md5"] == md5_bytes(b"top")
    assert t[base + "/empty"]["type"] == "folder"
    assert t[base + "/a/local.bin"]["md5"] == md5_bytes(local)
    assert "mover" not in t and t["emptytarget"]["type"] == "folder"


# ------------------------------------------------------------------ content semantics

def test_o_append_o_trunc_ftruncate(account, emulator, mounter):
    m = mounter(account)
    write_file(J(m, "app"), b"abc")
    fd = os.open(J(m, "app"), os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"def")          # O_APPEND: at the end, whatever the offset
    os.close(fd)
    assert read_file(J(m, "app")) == b"abcdef"
    fsync_write(J(m, "trunc"), b"hello world")
    fd = os.open(J(m, "trunc"), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"x")
    os.close(fd)
    assert read_file(J(m, "trunc")) == b"x"
    fsync_write(J(m, "emptied"), b"will be emptied")
    os.close(os.open(J(m, "emptied"), os.O_WRONLY | os.O_TRUNC))
    assert os.stat(J(m, "emptied")).st_size == 0
    base = os.urandom(MiB)
    write_file(J(m, "grow"), base)
    with open(J(m, "grow"), "r+b") as f:
        os.ftruncate(f.fileno(), 3 * MiB)
        assert os.fstat(f.fileno()).st_size == 3 * MiB
    assert read_file(J(m, "grow")) == base + bytes(2 * MiB)
    write_file(J(m, "shrink"), base)
    os.truncate(J(m, "shrink"), 1000)       # setattr size by path, no handle
    assert read_file(J(m, "shrink")) == base[:1000]
    m.unmount()
    want = {"app": b"abcdef", "trunc": b"x", "emptied": b"", "grow": base + bytes(2 * MiB),
            "shrink": base[:1000]}
    t = live(emulator, account.user)
    for n, d in want.items():
        assert t[n]["md5"] == md5_bytes(d) and t[n]["size"] == len(d), (n, t[n])


def test_changes_to_files_not_in_the_cache(account, emulator, mounter):
    """Append, O_TRUNC, truncate grow/shrink and a middle write on server files
    that are not local: the kept content is fetched and the upload is whole."""
    body = os.urandom(3 * MiB + 11)
    emulator.seed([{"path": n, "content_b64": base64.b64encode(body).decode()}
                   for n in ("append", "grow", "shrink", "middle", "trunc")],
                  user=account.user)
    m = mounter(account)
    with open(J(m, "append"), "ab") as f:
        f.write(b"tail")
    with open(J(m, "grow"), "r+b") as f:
        f.truncate(5 * MiB)
    os.truncate(J(m, "shrink"), MiB + 1)
    with open(J(m, "middle"), "r+b") as f:
        f.seek(2 * MiB)
        f.write(b"MIDDLE")
    with open(J(m, "trunc"), "wb") as f:
        f.write(b"new")
    m.unmount()
    mid = bytearray(body)
    mid[2 * MiB:2 * MiB + 6] = b"MIDDLE"
    want = {"append": body + b"tail", "grow": body + bytes(5 * MiB - len(body)),
            "shrink": body[:MiB + 1], "middle": bytes(mid), "trunc": b"new"}
    t = live(emulator, account.user)
    for n, d in want.items():
        assert t[n]["md5"] == md5_bytes(d) and t[n]["size"] == len(d), (n, t[n]["size"], len(d))
    # And a fresh cache reads the same bytes back.
    clear_cache(account)
    m = mounter(account)
    for n, d in want.items():
        assert md5_file(J(m, n)) == md5_bytes(d), n
    m.unmount()


def test_sparse_file_beyond_4gib(account, emulator, mounter):
    """1 byte at 5 GiB: size, read-back and holes, through the daemon's 64-bit
    offsets. Uploading 5 GiB of zeros to the emulator takes minutes (its
    upload runs at ~140 MB/s here), so the file is shrunk to 1 MiB before the
    last close and the server checks what that upload holds; a file beyond
    4 GiB is never uploaded by this suite."""
    m = mounter(account)
    G = 1 << 30
    p = J(m, "sparse.bin")
    with open(p, "w+b") as f:
        f.seek(5 * G)
        f.write(b"Z")
        f.flush()
        assert os.fstat(f.fileno()).st_size == 5 * G + 1
        assert os.stat(p).st_size == 5 * G + 1
        f.seek(5 * G)
        assert f.read(1) == b"Z"
        f.seek(4 * G - 2)
        assert f.read(4) == bytes(4)
        f.seek(5 * G - 4096)
        assert f.read(4097) == bytes(4096) + b"Z"
        f.seek(4 * G + 7)
        f.write(b"above 4G")
        f.flush()
        f.seek(4 * G)
        assert f.read(16) == bytes(7) + b"above 4G" + bytes(1)
        # A second descriptor sees the same. The writer stays open, so that no
        # release of a 5 GiB dirty file hashes and queues it.
        with open(p, "rb") as g:
            g.seek(4 * G + 7)
            assert g.read(8) == b"above 4G"
            g.seek(5 * G)
            assert g.read(2) == b"Z"
        f.truncate(MiB)
        f.seek(100)
        f.write(b"end")
    want = bytes(100) + b"end" + bytes(MiB - 103)
    assert read_file(p) == want
    m.unmount()
    x = live(emulator, account.user)["sparse.bin"]
    assert x["size"] == MiB and x["md5"] == md5_bytes(want), x


def test_utimens_without_reupload(account, emulator, mounter):
    m = mounter(account)
    fsync_write(J(m, "clean.txt"), b"clean content")
    emulator.reset_stats()
    os.utime(J(m, "clean.txt"), (1500000000.9, 1500000000.9))
    assert int(os.stat(J(m, "clean.txt")).st_mtime) == 1500000000
    os.utime(J(m, "clean.txt"), ns=(1600000000_700000000, 1600000000_700000000))
    st = os.stat(J(m, "clean.txt"))
    assert int(st.st_mtime) == 1600000000
    wait_for(lambda: live(emulator, account.user)["clean.txt"]["modified"] == 1600000000, 20,
             "the server mtime to follow utimens")
    s = emulator.stats()
    assert s["upload_bytes"] == 0 and s["requests"]["upload"] == 0, (
        "utimens re-uploaded a clean file: %r" % s)
    x = live(emulator, account.user)["clean.txt"]
    assert x["revision"] == 1 and x["md5"] == md5_bytes(b"clean content"), x
    m.unmount()
    clear_cache(account)
    m = mounter(account)
    assert int(os.stat(J(m, "clean.txt")).st_mtime) == 1600000000
    m.unmount()


# ------------------------------------------------------------------ conflicts

CONFLICT_RE = re.compile(r"^doc \(conflict (\d{4}-\d\d-\d\d \d{6})\)\.txt$")


def _check_conflict(emulator, user, server_v2, local, t_before, t_after, prefix=""):
    t = live(emulator, user)
    names = sorted(p[len(prefix):] for p in t if p.startswith(prefix) and "/" not in p[len(prefix):])
    assert len(names) == 2 and "doc.txt" in names, names
    other = [n for n in names if n != "doc.txt"][0]
    mt = CONFLICT_RE.match(other)
    assert mt, "conflict name %r does not match NAME (conflict YYYY-MM-DD hhmmss).EXT" % other
    stamp = datetime.strptime(mt.group(1), "%Y-%m-%d %H%M%S").replace(tzinfo=timezone.utc)
    assert t_before - 2 <= stamp.timestamp() <= t_after + 2, (other, t_before, t_after)
    assert emulator.content(prefix + "doc.txt", user=user) == server_v2
    assert emulator.content(prefix + other, user=user) == local
    return other


def test_conflict_while_open_for_writing(account, emulator, mounter):
    emulator.seed([{"path": "doc.txt", "content": "server v1\n"}], user=account.user)
    m = mounter(account, allow_errors=True)
    t0 = time.time()
    with open(J(m, "doc.txt"), "r+b") as f:
        assert f.read() == b"server v1\n"
        f.seek(0)
        f.write(b"local edit\n")
        f.flush()
        emulator.seed([{"path": "doc.txt", "content": "server v2, changed meanwhile\n"}],
                      user=account.user)
    m.unmount()
    other = _check_conflict(emulator, account.user, b"server v2, changed meanwhile\n",
                            b"local edit\n", t0, time.time())
    assert "conflict" in m.output(), "the conflict was not logged:\n" + m.output()
    clear_cache(account)
    m = mounter(account)
    assert read_file(J(m, "doc.txt")) == b"server v2, changed meanwhile\n"
    assert read_file(J(m, other)) == b"local edit\n"
    m.unmount()


def test_conflict_while_upload_pending(account, emulator, mounter):
    emulator.seed([{"path": "d/doc.txt", "content": "server v1\n"}], user=account.user)
    m = mounter(account, allow_errors=True)
    t0 = time.time()
    assert read_file(J(m, "d", "doc.txt")) == b"server v1\n"
    write_file(J(m, "d", "doc.txt"), b"local rewrite\n")   # upload waits 2 s (write-back)
    emulator.seed([{"path": "d/doc.txt", "content": "server v2\n"}], user=account.user)
    m.unmount()
    _check_conflict(emulator, account.user, b"server v2\n", b"local rewrite\n", t0,
                    time.time(), prefix="d/")


# ------------------------------------------------------------------ open files

def test_rename_and_unlink_while_open(account, emulator, mounter):
    m = mounter(account)
    os.mkdir(J(m, "dir"))
    # Renamed while open for writing, written after: the upload lands at the new name.
    f = open(J(m, "dir", "open.tmp"), "wb")
    f.write(b"before rename;")
    f.flush()
    os.rename(J(m, "dir", "open.tmp"), J(m, "dir", "open.txt"))
    f.write(b"after rename;")
    f.flush()
    # Its directory renamed too, still open.
    os.rename(J(m, "dir"), J(m, "moved dir"))
    f.write(b"after dir rename")
    f.close()
    assert read_file(J(m, "moved dir", "open.txt")) == b"before rename;after rename;after dir rename"
    # Unlinked while open: the descriptor keeps working, nothing is uploaded.
    g = open(J(m, "scratch"), "w+b")
    g.write(b"scratch data")
    g.flush()
    os.unlink(J(m, "scratch"))
    g.write(b" more")
    g.seek(0)
    assert g.read() == b"scratch data more"
    g.close()
    assert sorted(os.listdir(m.path)) == ["moved dir"]
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == ["moved dir", "moved dir/open.txt"], sorted(t)
    assert t["moved dir/open.txt"]["md5"] == md5_bytes(
        b"before rename;after rename;after dir rename")


def test_o_trunc_of_a_big_server_file_downloads_nothing(account, emulator, mounter):
    emulator.seed([{"path": "big.bin", "size": 40 * MiB}], user=account.user)
    m = mounter(account)
    emulator.reset_stats()
    with open(J(m, "big.bin"), "wb") as f:        # O_WRONLY|O_CREAT|O_TRUNC
        f.write(b"small now")
    got = wait_steady(lambda: emulator.stats()["download_bytes"], "downloads in flight")
    assert got < MiB, "O_TRUNC of a 40 MiB file fetched %d bytes of content it drops" % got
    m.unmount()
    x = live(emulator, account.user)["big.bin"]
    assert x["size"] == 9 and x["md5"] == md5_bytes(b"small now"), x


def test_mmap_shared_write_is_uploaded(account, emulator, mounter):
    """Writes through a shared writable mapping reach the cache and the
    server, also when they land after close() (munmap after close)."""
    import mmap
    m = mounter(account)
    base = os.urandom(3 * 4096 + 100)
    write_file(J(m, "mapped.bin"), base)
    fd = os.open(J(m, "mapped.bin"), os.O_RDWR)
    mm = mmap.mmap(fd, len(base))
    mm[5000:5010] = b"0123456789"
    mm.flush()
    os.close(fd)                         # the mapping outlives the descriptor
    mm[100:104] = b"late"
    mm.close()
    want = bytearray(base)
    want[5000:5010] = b"0123456789"
    want[100:104] = b"late"
    assert read_file(J(m, "mapped.bin")) == bytes(want)
    m.unmount()
    assert live(emulator, account.user)["mapped.bin"]["md5"] == md5_bytes(bytes(want))


# ------------------------------------------------------------------ attributes

def test_honest_attributes(account, emulator, mounter):
    """Issue 7 item 5: a folder's mtime and ctime move when an entry is
    created, removed or renamed in it; utimensat on a folder is kept (in the
    index: it survives a remount with the same cache); st_blocks of a sparse
    local file counts what is allocated; f_namemax is the real limit."""
    emulator.seed([{"path": "d/old.txt", "content": "old"}, {"path": "e/keep", "content": "k"}],
                  user=account.user)
    m = mounter(account)
    d, e = J(m, "d"), J(m, "e")
    old = 1000000000

    def changed_by(op, *dirs):
        for x in dirs:
            os.utime(x, (old, old))
            assert int(os.stat(x).st_mtime) == old     # utimensat on a folder is kept
        before = int(time.time())
        op()
        for x in dirs:
            st = os.stat(x)
            assert int(st.st_mtime) >= before and int(st.st_ctime) >= before, (op, x, st)

    changed_by(lambda: write_file(os.path.join(d, "new.txt"), b"new"), d)
    changed_by(lambda: os.mkdir(os.path.join(d, "sub")), d)
    changed_by(lambda: os.rmdir(os.path.join(d, "sub")), d)
    changed_by(lambda: os.unlink(os.path.join(d, "old.txt")), d)
    changed_by(lambda: os.rename(os.path.join(d, "new.txt"), os.path.join(d, "n2.txt")), d)
    changed_by(lambda: os.rename(os.path.join(d, "n2.txt"), os.path.join(e, "n3.txt")), d, e)
    os.utime(d, (1234567890, 1234567890))
    assert int(os.stat(d).st_mtime) == 1234567890

    # st_blocks: a 64 MiB sparse file with 4 KiB written holds about 4 KiB.
    fd = os.open(J(m, "sparse"), os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, 64 * MiB)
        os.pwrite(fd, b"x" * 4096, 32 * MiB)
        for st in (os.fstat(fd), os.stat(J(m, "sparse"))):
            assert st.st_size == 64 * MiB
            assert st.st_blocks * 512 < MiB, st.st_blocks
    finally:
        os.close(fd)

    # names: the service counts UTF-16 units, 255 of them
    assert os.statvfs(m.path).f_namemax == 765
    write_file(J(m, "\u20ac" * 255), b"euro")
    assert errno_of(os.open, J(m, "\u20ac" * 256), os.O_WRONLY | os.O_CREAT) == errno.ENAMETOOLONG
    m.unmount()
    m = mounter(account, path=m.path)
    assert int(os.stat(J(m, "d")).st_mtime) == 1234567890
    assert read_file(J(m, "\u20ac" * 255)) == b"euro"
    m.unmount()


# ------------------------------------------------------------------ huge sparse files

FILE_SIZE_MAX = 64 << 30        # fs/ops.c, man page: the largest file jottafs writes


def test_huge_sparse_files_never_wedge_the_mount(account, emulator, mounter, tmp_path):
    """Issue 7 item 4: `truncate -s 1T` blocked close() for tens of minutes
    hashing holes (unmount EBUSY meanwhile). Past the upload limit a
    truncate or write fails at once with EFBIG; under it, a sparse file's
    holes are hashed without being read, close() returns, rm and unmount
    work at once."""
    m = mounter(account)
    f = J(m, "huge")
    t0 = time.monotonic()
    p = subprocess.run(["truncate", "-s", "1T", f], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "File too large" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10
    assert errno_of(os.truncate, f, FILE_SIZE_MAX + 1) == errno.EFBIG
    fd = os.open(f, os.O_RDWR)
    try:
        assert errno_of(os.ftruncate, fd, 1 << 40) == errno.EFBIG
        assert errno_of(os.pwrite, fd, b"x", FILE_SIZE_MAX) == errno.EFBIG
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
    # 60 GiB apparent, 4 KiB written: close() returns within 2 s (the MD5 is
    # left to the upload), then rm and unmount at once.
    with knobs(emulator, latency_ms=300, latency_kinds="upload,allocate"):
        t0 = time.monotonic()
        fd = os.open(J(m, "sparse"), os.O_RDWR | os.O_CREAT)
        os.ftruncate(fd, 60 << 30)
        os.pwrite(fd, b"y" * 4096, 30 << 30)
        os.close(fd)
        took = time.monotonic() - t0
        print("create + truncate + write + close() of a 60 GiB sparse file: %.2f s" % took)
        assert took < 2
        t0 = time.monotonic()
        assert os.stat(J(m, "sparse")).st_size == 60 << 30
        os.unlink(J(m, "sparse"))
        os.unlink(f)
        assert time.monotonic() - t0 < 10
        t0 = time.monotonic()
        m.unmount(timeout=60)
        print("unmount: %.2f s" % (time.monotonic() - t0))
    assert not any(k in live(emulator, account.user) for k in ("huge", "sparse"))


def test_a_huge_file_hashed_by_its_upload_lands_right(account, emulator, mounter):
    """A 300 MiB sparse file (over the 256 MiB left to hash at close) is
    committed without its MD5; the upload hashes it: the service holds its
    exact bytes, the file turns synced with that MD5, and a rewrite of one
    byte (hashed by the upload again) lands on it without a conflict copy."""
    import hashlib
    size = 300 * MiB
    spots = [(0, b"head" * 1024), (size // 2, b"mid" * 1000), (size - 4096, b"t" * 4096)]

    def model_md5(spots):
        h, pos = hashlib.md5(), 0
        for off, data in sorted(spots):
            while pos < off:
                n = min(off - pos, 8 * MiB)
                h.update(bytes(n))
                pos += n
            h.update(data)
            pos += len(data)
        h.update(bytes(size - pos))
        return h.hexdigest()

    m = mounter(account)
    p = J(m, "huge.bin")
    for rnd in range(2):
        t0 = time.monotonic()
        fd = os.open(p, os.O_RDWR | os.O_CREAT)
        if rnd == 0:
            os.ftruncate(fd, size)
        for off, data in spots:
            os.pwrite(fd, data, off)
        os.close(fd)
        assert time.monotonic() - t0 < 2
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)            # waits for the upload of what was closed
        os.close(fd)
        want = model_md5(spots)
        x = live(emulator, account.user)["huge.bin"]
        assert (x["md5"], x["size"]) == (want, size), (rnd, x, want)
        assert os.getxattr(p, "user.jottacloud.state") == b"synced"
        assert os.getxattr(p, "user.jottacloud.md5") == want.encode()
        spots[0] = (0, b"HEAD" + spots[0][1][4:])
    m.unmount(timeout=120)
    t = live(emulator, account.user)
    assert sorted(t) == ["huge.bin"], sorted(t)
    clear_cache(account)
    m2 = mounter(account, path=m.path)
    with open(J(m2, "huge.bin"), "rb") as fh:
        for off, data in spots:
            fh.seek(off)
            assert fh.read(len(data)) == data, off
    m2.unmount()
    out = m.output() + m2.output()
    assert "conflict" not in out and "changed on the server" not in out, out[-3000:]


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_rm_while_the_upload_hashes_a_huge_sparse_file(account, emulator, mounter):
    """Issue 7 item 4: close() of a 32 GiB sparse file returns at once; its
    upload hashes it (a minute of MD5) in the background; meanwhile stat and
    rm are answered at once, the rm ends the hashing, and unmount is quick."""
    m = mounter(account)
    f = J(m, "big")
    fd = os.open(f, os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, 32 << 30)
    os.pwrite(fd, b"z" * 4096, 0)
    cpu0 = _cpu_seconds(m.proc.pid)
    t0 = time.monotonic()
    os.close(fd)
    closed = time.monotonic() - t0
    assert closed < 2, closed
    # The upload worker is hashing once the daemon burnt CPU time since.
    wait_for(lambda: _cpu_seconds(m.proc.pid) - cpu0 > 1.0, 60, "the upload hashing")
    t0 = time.monotonic()
    assert os.stat(f).st_size == 32 << 30
    os.unlink(f)
    took = time.monotonic() - t0
    t0 = time.monotonic()
    m.unmount(timeout=60)
    unmounted = time.monotonic() - t0
    print("close: %.2f s; stat + rm while hashing: %.2f s; unmount: %.2f s"
          % (closed, took, unmounted))
    assert took < 5 and unmounted < 10
    assert "big" not in live(emulator, account.user)
