"""Offline and degraded network (issue 8), against the emulator in three
outage modes: every connection reset, every request answered 503, and the
emulator stopped (connection refused).

While offline: cached reads, ls, stat, create+write and df answer at local
speed; an uncached read, mv and fsync fail fast with EHOSTDOWN; rm and mkdir
are journalled (cache/deletes.h) and answer at local speed, applied once the
service is back; one log line says the service went away. Once it is back the upload queued during
the outage lands within 10 s. A mount during an outage comes up offline
from its index, or fails fast without one. Times are printed (pytest -s)
for the issue's note.
"""
import base64
import errno
import os
import subprocess
import time

import pytest

from helpers import Account, BIN, live, md5_bytes, MiB, Mount, wait_for

MODES = ["reset", "503", "stopped"]

# Generous bounds (a loaded 2-core machine): "local speed" is well under
# 100 ms when measured alone; "fails fast" is a few seconds at most.
LOCAL_S = 1.0
WRITE_S = 5.0
FAIL_FAST_S = 6.0
DETECT_S = 10.0


@pytest.fixture
def emu(own_emulator):
    return own_emulator


def _account(emu, tmp_path, name="a"):
    acc = Account(emu, tmp_path, name=name, user="off" + name)
    acc.login()
    return acc


def _outage(emu, mode):
    if mode == "stopped":
        emu.stop()
    else:
        emu.set_knobs(outage_mode=mode, outage=True)


def _restore(emu, mode):
    if mode == "stopped":
        emu.start()             # same port, same data directory
    else:
        emu.set_knobs(outage=False)


def _timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0


def _errno_timed(fn, *a):
    t0 = time.monotonic()
    try:
        fn(*a)
    except OSError as e:
        return e.errno, time.monotonic() - t0
    return 0, time.monotonic() - t0


def _read(path, n=-1):
    with open(path, "rb") as f:
        return f.read(n)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _seed(emu, user, files):
    emu.seed([{"path": p, "content_b64": base64.b64encode(c).decode()}
              for p, c in files.items()], user=user)


def _offline_lines(m):
    return [ln for ln in m.output().splitlines() if "service unreachable" in ln]


@pytest.mark.parametrize("mode", MODES)
def test_offline_operations_and_recovery(emu, tmp_path, mode):
    acc = _account(emu, tmp_path)
    cached = os.urandom(300000)
    uncached = os.urandom(200000)
    _seed(emu, acc.user, {"d/cached.bin": cached, "d/uncached.bin": uncached,
                          "d/other.txt": b"x" * 10, "e/again.txt": b"first\n",
                          "e/f/old.txt": b"old\n"})
    # Listings go stale after 1 s, so every ls below asks for a revalidation.
    m = Mount(acc, tmp_path / "mnt", options=["dir_cache_time=1"], allow_errors=True)
    try:
        d = os.path.join(m.path, "d")
        assert sorted(os.listdir(d)) == ["cached.bin", "other.txt", "uncached.bin"]
        assert _read(os.path.join(d, "cached.bin")) == cached
        assert sorted(os.listdir(os.path.join(m.path, "e"))) == ["again.txt", "f"]
        assert os.listdir(os.path.join(m.path, "e", "f")) == ["old.txt"]
        online_df = os.statvfs(m.path)
        assert online_df.f_blocks > 0

        _outage(emu, mode)
        time.sleep(1.2)         # not a wait: d's listing must go stale (dir_cache_time=1)
        times = {}
        # The first request that needs the service finds the outage.
        err, times["uncached read (detects)"] = _errno_timed(
            _read, os.path.join(d, "uncached.bin"))
        assert err == errno.EHOSTDOWN, os.strerror(err) if err else "read succeeded"
        assert times["uncached read (detects)"] < DETECT_S, times

        # From now on: offline.
        data, times["cached read"] = _timed(_read, os.path.join(d, "cached.bin"))
        assert data == cached
        names, times["ls"] = _timed(os.listdir, d)
        assert sorted(names) == ["cached.bin", "other.txt", "uncached.bin"]
        st, times["stat"] = _timed(os.stat, os.path.join(d, "other.txt"))
        assert st.st_size == 10
        new = os.urandom(5000)
        _, times["create+write"] = _timed(_write, os.path.join(d, "new.bin"), new)
        assert _read(os.path.join(d, "new.bin")) == new
        df, times["df"] = _timed(os.statvfs, m.path)
        assert df.f_blocks == online_df.f_blocks, "df forgot the quota offline"
        for what, t in times.items():
            if what != "uncached read (detects)":
                # create+write syncs the content and the journal to disk on
                # close(): a loaded disk may take a while, the network never
                bound = WRITE_S if what == "create+write" else LOCAL_S
                assert t < bound, (what, times, m.output()[-3000:])

        fails = {}
        fails["uncached read"] = _errno_timed(_read, os.path.join(d, "uncached.bin"))
        fails["mv"] = _errno_timed(os.rename, os.path.join(d, "other.txt"),
                                   os.path.join(d, "moved.txt"))
        synced = os.urandom(3000)

        def write_fsync():
            fd = os.open(os.path.join(d, "synced.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, synced)
                os.fsync(fd)
            finally:
                os.close(fd)
        fails["fsync"] = _errno_timed(write_fsync)
        for what, (e, t) in fails.items():
            assert e == errno.EHOSTDOWN, (what, os.strerror(e) if e else "succeeded")
            assert t < FAIL_FAST_S, (what, t)
        # Still there, unchanged, after the refused namespace operations.
        assert sorted(os.listdir(d)) == ["cached.bin", "new.bin", "other.txt",
                                         "synced.bin", "uncached.bin"]
        # A mkdir is journalled and waits for the service; a file made in
        # the new folder is uploaded into it later.
        _, t_mkdir = _timed(os.mkdir, os.path.join(d, "sub"))
        assert t_mkdir < WRITE_S, t_mkdir
        _write(os.path.join(d, "sub", "in.txt"), b"made offline\n")
        os.mkdir(os.path.join(d, "empty"))
        assert sorted(os.listdir(os.path.join(d, "sub"))) == ["in.txt"]
        assert sorted(os.listdir(d)) == ["cached.bin", "empty", "new.bin", "other.txt",
                                         "sub", "synced.bin", "uncached.bin"]
        # A delete is journalled and waits for the service (cache/deletes.h).
        _, t_rm = _timed(os.unlink, os.path.join(d, "other.txt"))
        assert t_rm < WRITE_S, t_rm
        assert sorted(os.listdir(d)) == ["cached.bin", "empty", "new.bin", "sub",
                                         "synced.bin", "uncached.bin"]
        # A name made again after its delete was queued (an editor's save,
        # rm -rf then mkdir): the create and the mkdir go ahead; on the
        # service the deletes come first, then the new file and folder.
        e = os.path.join(m.path, "e")
        assert sorted(os.listdir(e)) == ["again.txt", "f"]
        os.unlink(os.path.join(e, "again.txt"))
        _write(os.path.join(e, "again.txt"), b"second\n")
        subprocess.run(["rm", "-rf", os.path.join(e, "f")], check=True, timeout=30)
        os.mkdir(os.path.join(e, "f"))
        _write(os.path.join(e, "f", "new.txt"), b"new\n")
        assert sorted(os.listdir(e)) == ["again.txt", "f"]
        assert _read(os.path.join(e, "again.txt")) == b"second\n"
        assert sorted(os.listdir(os.path.join(e, "f"))) == ["new.txt"]
        print("\n[%s] offline times (s): %s; failures (errno, s): %s" % (
            mode, {k: round(v, 3) for k, v in times.items()},
            {k: (errno.errorcode.get(e, e), round(t, 3)) for k, (e, t) in fails.items()}))
        print("[%s] offline mkdir took %.3f s" % (mode, t_mkdir))
        assert len(_offline_lines(m)) == 1, m.output()

        # Hold the outage long enough for the upload of new.bin to have
        # backed off several times (1 s, 2 s, 4 s, 8 s ...): the scenario's
        # length, not synchronisation.
        time.sleep(15)
        _restore(emu, mode)
        t_back = time.monotonic()
        wait_for(lambda: (live(emu, acc.user).get("d/new.bin") or {}).get("md5")
                 == md5_bytes(new), 10, "d/new.bin uploaded within 10 s of the end")
        landed = time.monotonic() - t_back
        wait_for(lambda: (live(emu, acc.user).get("d/synced.bin") or {}).get("md5")
                 == md5_bytes(synced), 10, "d/synced.bin uploaded")
        wait_for(lambda: "d/other.txt" not in live(emu, acc.user), 10,
                 "the delete queued offline applied")
        wait_for(lambda: (live(emu, acc.user).get("d/sub/in.txt") or {}).get("md5")
                 == md5_bytes(b"made offline\n") and
                 (live(emu, acc.user).get("d/empty") or {}).get("type") == "folder", 10,
                 "the folders made offline on the service")
        wait_for(lambda: (live(emu, acc.user).get("e/again.txt") or {}).get("md5")
                 == md5_bytes(b"second\n") and
                 (live(emu, acc.user).get("e/f/new.txt") or {}).get("md5")
                 == md5_bytes(b"new\n"), 10, "the files made again offline uploaded")
        on_e = sorted(p for p in live(emu, acc.user) if p.startswith("e/"))
        assert on_e == ["e/again.txt", "e/f", "e/f/new.txt"], on_e      # no conflict copy
        # and a reader retrying now gets its data
        assert _read(os.path.join(d, "uncached.bin")) == uncached
        print("[%s] upload landed %.2f s after the outage ended" % (mode, landed))
        assert "service reachable again" in m.output()
        # new.bin had backed off for the whole outage: its delay was reset
        assert "restarted now (retry delays reset)" in m.output(), m.output()
        m.unmount()
    finally:
        m.cleanup()


@pytest.mark.parametrize("mode", MODES)
def test_mount_during_outage(emu, tmp_path, mode):
    acc = _account(emu, tmp_path)
    _seed(emu, acc.user, {"d/f.txt": b"hello"})
    m = Mount(acc, tmp_path / "mnt")
    assert _read(os.path.join(m.path, "d", "f.txt")) == b"hello"
    online_blocks = os.statvfs(m.path).f_blocks
    assert online_blocks > 0
    m.unmount()
    m.cleanup()

    _outage(emu, mode)
    try:
        # With an index: up at once, offline, serving it.
        t0 = time.monotonic()
        m = Mount(acc, tmp_path / "mnt", allow_errors=True)
        took = time.monotonic() - t0
        try:
            assert took < DETECT_S, took
            assert os.listdir(os.path.join(m.path, "d")) == ["f.txt"]
            assert _read(os.path.join(m.path, "d", "f.txt")) == b"hello"
            assert "mounting offline" in m.output(), m.output()
            df, t_df = _timed(os.statvfs, m.path)
            assert df.f_blocks == online_blocks and t_df < LOCAL_S, (df, t_df)
            print("\n[%s] offline mount with an index: %.2f s" % (mode, took))

            # Without an index (an empty cache directory): fails fast, saying why.
            empty = tmp_path / "empty-cache"
            mnt2 = tmp_path / "mnt2"
            empty.mkdir()
            mnt2.mkdir()
            t0 = time.monotonic()
            p = subprocess.run([BIN, "-f", "-o", "account=%s,cache_dir=%s" % (acc.name, empty),
                                str(mnt2)], env=acc.env, capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            took2 = time.monotonic() - t0
            assert p.returncode != 0
            assert "no index" in p.stderr, p.stderr
            assert took2 < DETECT_S, took2
            print("[%s] offline mount without an index fails in %.2f s: %s" % (
                mode, took2, p.stderr.strip()))

            _restore(emu, mode)
            wait_for(lambda: "service reachable again" in m.output(), 15,
                     "the mount goes online")
            _write(os.path.join(m.path, "d", "g.txt"), b"after")
            wait_for(lambda: "d/g.txt" in live(emu, acc.user), 15, "g.txt uploaded")
            m.unmount()
        finally:
            m.cleanup()
    finally:
        if not emu.alive():
            emu.start()


def test_file_manager_walk_offline(emu, tmp_path):
    """readdir + stat + a small read of every file of a 500-file tree."""
    acc = _account(emu, tmp_path)
    files = {"t/d%02d/f%03d.txt" % (i // 50, i): ("file %d " % i).encode() * 20
             for i in range(500)}
    _seed(emu, acc.user, files)
    m = Mount(acc, tmp_path / "mnt", options=["dir_cache_time=1"], allow_errors=True)
    try:
        def walk():
            n = 0
            for root, dirs, names in os.walk(os.path.join(m.path, "t")):
                for name in names:
                    p = os.path.join(root, name)
                    os.stat(p)
                    rel = os.path.relpath(p, m.path)
                    assert _read(p, 64) == files[rel][:64], rel
                    n += 1
            return n
        assert walk() == 500          # online: lists and caches the heads
        emu.set_knobs(outage_mode="reset", outage=True)
        time.sleep(1.2)               # not a wait: every listing must go stale first
        n, took = _timed(walk)
        assert n == 500
        print("\noffline walk of 500 files: %.2f s" % took)
        assert took < 20, took
        emu.set_knobs(outage=False)
        m.unmount()
    finally:
        m.cleanup()


def test_slow_link_is_not_an_outage(emu, tmp_path):
    """A slow but working link (bandwidth cap, 2 s to the first byte) is
    never taken for an outage: the bounded waits are about silence, not
    speed."""
    acc = _account(emu, tmp_path)
    data = os.urandom(MiB)
    _seed(emu, acc.user, {"slow/in.bin": data})
    m = Mount(acc, tmp_path / "mnt", allow_errors=True)
    try:
        emu.set_knobs(bandwidth=300000, latency_ms=2000,
                      latency_kinds="download,upload,allocate")
        assert _read(os.path.join(m.path, "slow", "in.bin")) == data
        out = os.urandom(MiB)
        _write(os.path.join(m.path, "slow", "out.bin"), out)
        wait_for(lambda: (live(emu, acc.user).get("slow/out.bin") or {}).get("md5")
                 == md5_bytes(out), 60, "slow/out.bin uploaded over the slow link")
        assert not _offline_lines(m), m.output()
        emu.reset_knobs()
        m.unmount()
    finally:
        m.cleanup()
