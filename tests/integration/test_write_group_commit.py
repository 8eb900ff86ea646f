"""Group commit of the upload journal under kill -9 (issue 9, item 4): the
journal records of closes that happen at the same time share one sync of the
journal (cache/db.h "Group sync"), and still every close() returns only once
its record is durable. Many threads close files at once; the daemon is
killed with SIGKILL right after the last close returned, with most uploads
still queued (slow allocate and upload); the next mount on the same cache
directory uploads every one of them, with the content that was written."""
import hashlib
import os
import threading

from helpers import knobs, live, wait_for

THREADS = 16
PER_THREAD = 25


def _writer(dst, t, closed, errors):
    """Write PER_THREAD files; each one is recorded in @closed once its
    close() returned."""
    try:
        for i in range(PER_THREAD):
            name = "t%02d-%03d.bin" % (t, i)
            # sizes from empty to a few pages, content unique to the file
            data = (b"%s:" % name.encode()) * (1 + (t * PER_THREAD + i) % 700)
            with open(os.path.join(dst, name), "wb") as f:
                f.write(data)
            closed.append((name, hashlib.md5(data).hexdigest()))
    except OSError as e:        # pragma: no cover - reported by the test
        errors.append("thread %d: %s" % (t, e))


def _closed_on_server(emulator, user, folder, closed):
    srv = live(emulator, user)
    return srv, [(n, md5) for n, md5 in closed if folder + "/" + n in srv]


def test_concurrent_closes_survive_kill9(account, emulator, mounter):
    folder = "gc"
    closed, errors = [], []
    with knobs(emulator, latency_ms=200, latency_kinds="allocate,upload"):
        m = mounter(account, allow_errors=True)
        dst = os.path.join(m.path, folder)
        os.mkdir(dst)
        threads = [threading.Thread(target=_writer, args=(dst, t, closed, errors))
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=300)
        assert not any(th.is_alive() for th in threads), "writers did not finish"
        # every close() has returned: kill at once, no unmount, no wait
        m.kill()
        assert not errors, errors
        assert len(closed) == THREADS * PER_THREAD, len(closed)
        _, landed = _closed_on_server(emulator, account.user, folder, closed)
        print("%d files closed by %d threads; %d on the server at the kill"
              % (len(closed), THREADS, len(landed)))
        assert len(landed) < len(closed) // 2, (
            "most uploads had landed before the kill; the test proves nothing")

    m2 = mounter(account)      # same cache directory: the journal has every record

    def all_there():
        srv, there = _closed_on_server(emulator, account.user, folder, closed)
        return len(there) == len(closed)
    wait_for(all_there, 300, "every closed file on the server", interval=0.2)
    m2.unmount(timeout=300)
    srv = live(emulator, account.user)
    bad = []
    for name, md5 in closed:
        x = srv.get(folder + "/" + name)
        if x is None:
            bad.append("lost: %s" % name)
        elif x["type"] != "file" or x["md5"] != md5:
            bad.append("wrong content: %s (server %s, written %s)" % (name, x["md5"], md5))
        elif x["revisions"] != 1:
            bad.append("%s has %d revisions" % (name, x["revisions"]))
    assert not bad, "%d of %d closed files:\n%s" % (len(bad), len(closed), "\n".join(bad[:50]))
