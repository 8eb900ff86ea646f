"""Small files cost one sync at close() (issue 9, item 4): the bytes of a file
of up to 64 KiB go into the upload journal in the same transaction as its
record, so close() syncs the journal only, not the cache file as well
(cache/data.h inline_max, cache/journal.c "Journalled content").

The promise stays: once close() returned, a crash loses nothing. A power cut
is simulated the hard way: the daemon is killed with SIGKILL while the uploads
wait (slow allocate and upload), then the cache files of the pending uploads
are emptied or overwritten with garbage, as if their pages had never reached
the disk, and the index (synced lazily) forgets half of them. The next mount
keeps those files (they are not orphans: their uploads are pending), writes
them back from the journal and uploads the content that was written — every byte checked on the service and through the
mount. Larger files keep the fsync of their cache file (they are not touched
here: their bytes are on disk).
"""
import glob
import hashlib
import os
import signal
import sqlite3
import subprocess
import time

from helpers import knobs, live, read_file, wait_for, write_file

SIZES = [0, 1, 100, 4096, 4097, 30000, 65535, 65536, 65537, 200000]


def _content(i, size):
    seed = hashlib.sha256(b"inline-%d" % i).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _journal(account):
    found = glob.glob(os.path.join(str(account.cache_home), "**", "journal.db"), recursive=True)
    assert len(found) == 1, found
    return found[0]


def test_power_cut_after_close_loses_nothing(account, emulator, mounter):
    files = {"f%02d-%d.bin" % (i, s): _content(i, s) for i, s in enumerate(SIZES)}
    with knobs(emulator, latency_ms=3000, latency_kinds="allocate,upload"):
        m = mounter(account, allow_errors=True)
        os.mkdir(os.path.join(m.path, "d"))
        for name, data in files.items():
            write_file(os.path.join(m.path, "d", name), data)
        m.kill()
        # the journal holds a record for every file, and the bytes of the small ones
        db = sqlite3.connect(_journal(account))
        rows = db.execute("SELECT path, content_file, size, content IS NOT NULL"
                          " FROM upload").fetchall()
        db.close()
        assert len(rows) == len(files), rows
        inline = {os.path.basename(p): (cf, size) for p, cf, size, has in rows if has}
        assert sorted(inline) == sorted(n for n, d in files.items() if len(d) <= 65536), inline
        # the power cut: the small files' cache files lost their pages, and
        # the index (not synced at close) the records of half of them: their
        # cache files look like orphans, which must not be swept away
        ids = []
        for n, (cf, size) in inline.items():
            if size in (0, 100):
                os.unlink(cf)           # its creation never reached the disk
            else:
                with open(cf, "r+b") as f:
                    if size % 2:
                        f.truncate(0)
                    else:
                        f.write(b"\xff" * size)
            ids.append(int(os.path.basename(cf)))
        idx = sqlite3.connect(_journal(account).replace("journal.db", "index.db"))
        gone = idx.execute("DELETE FROM content WHERE id IN (%s)"
                           % ",".join(str(i) for i in ids[::2])).rowcount
        idx.commit()
        idx.close()
        assert gone == len(ids[::2]), gone
    m2 = mounter(account)
    want = {"d/" + n: hashlib.md5(d).hexdigest() for n, d in files.items()}

    def landed():
        srv = live(emulator, account.user)
        return all(p in srv and srv[p]["md5"] == md5 for p, md5 in want.items())
    wait_for(landed, 120, "every closed file on the service with its content", interval=0.2)
    for name, data in files.items():
        assert read_file(os.path.join(m2.path, "d", name)) == data, name
    m2.unmount()


def _mount_with_folder(mounter, account, name):
    """A mount with folder @name holding one file (the first write's setup
    is not counted)."""
    m = mounter(account)
    d = os.path.join(m.path, name)
    os.mkdir(d)
    write_file(os.path.join(d, "warm.bin"), b"warm")
    return m, d


def _count_syncs(m, account, work):
    """Run @work() with the daemon under strace: (sync-class calls, strace's table)."""
    out = os.path.join(str(account.home), "strace-%d.txt" % time.monotonic_ns())
    st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-e",
                           "trace=fsync,fdatasync,sync_file_range,msync,syncfs,sync",
                           "-p", str(m.proc.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # "Process N attached with M threads": every thread is traced
        line = st.stderr.readline()
        assert "attached" in line, line
        work()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
    text = open(out).read()
    calls = 0
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 5 and p[-1] in ("fsync", "fdatasync", "sync_file_range", "msync",
                                     "syncfs", "sync") and p[3].isdigit():
            calls += int(p[3])
    return calls, text


def test_small_file_close_syncs_once(account, emulator, mounter):
    n = 100
    with knobs(emulator, latency_ms=2000, latency_kinds="allocate,upload"):
        m, d = _mount_with_folder(mounter, account, "s")

        def work():
            for i in range(n):
                write_file(os.path.join(d, "f%03d.bin" % i), _content(i, 4096))
        calls, text = _count_syncs(m, account, work)
        print("\n%d sync-class calls for %d closes of 4 KiB files:\n%s" % (calls, n, text))
        assert calls <= n * 1.2, text
        m.unmount()


def test_times_set_after_close_cost_no_sync(account, emulator, mounter):
    """tar and rsync set a file's times right after its close(): the new
    times join the pending upload without a sync of their own (POSIX makes
    times durable with fsync only); the service gets them."""
    n = 60
    stamp = 1500000000
    with knobs(emulator, latency_ms=2000, latency_kinds="allocate,upload"):
        m, d = _mount_with_folder(mounter, account, "t")

        def work():
            for i in range(n):
                p = os.path.join(d, "f%03d.bin" % i)
                write_file(p, _content(i, 3000))
                os.utime(p, (stamp + i, stamp + i))
        calls, text = _count_syncs(m, account, work)
        print("\n%d sync-class calls for %d closes + utimes:\n%s" % (calls, n, text))
        assert calls <= n * 1.2, text
        for i in range(n):
            assert os.stat(os.path.join(d, "f%03d.bin" % i)).st_mtime == stamp + i
    m.unmount()
    srv = live(emulator, account.user)
    for i in range(n):
        x = srv["t/f%03d.bin" % i]
        assert x["md5"] == hashlib.md5(_content(i, 3000)).hexdigest(), x
        assert x["modified"] == stamp + i, x
