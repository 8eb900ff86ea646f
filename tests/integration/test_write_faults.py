"""Uploads under faults (issue 4): 5xx bursts and random 5xx, 429 bursts,
connection resets in the middle of upload bodies, a 30 s outage, 5-second
access tokens. Every file arrives, none corrupt, and none is uploaded twice
as a separate revision (the emulator runs with dedup off, so a second
complete upload of the same file would show as revision 2)."""
import os
import random
import time

from helpers import MiB, knobs, live, md5_bytes


def _write_set(root, rng, n, sizes):
    os.makedirs(root, exist_ok=True)
    want = {}
    for i in range(n):
        data = rng.randbytes(rng.choice(sizes))
        name = "f%02d.bin" % i
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        want[name] = data
    return want


def _check(emulator, user, prefix, want):
    t = live(emulator, user)
    bad = []
    for name, data in want.items():
        x = t.get(prefix + name)
        if x is None:
            bad.append("missing " + prefix + name)
        elif x["md5"] != md5_bytes(data) or x["size"] != len(data):
            bad.append("corrupt %s: %r" % (prefix + name, x))
        elif x["revisions"] != 1 or x["revision"] != 1:
            bad.append("%s stored %d revisions (current %s)" % (prefix + name, x["revisions"],
                                                               x["revision"]))
    assert not bad, "\n".join(bad)


def test_5xx_429_and_resets(account, emulator, mounter):
    rng = random.Random(11)
    m = mounter(account, allow_errors=True)
    emulator.reset_stats()
    with knobs(emulator, dedup="off", seed=11):
        # 1. a burst: every allocate and data POST fails for 4 s.
        emulator.set_knobs(error_rate=1.0, error_status=503, error_kinds="allocate,upload")
        want = _write_set(os.path.join(m.path, "burst"), rng, 10, [1000, 300000, 2 * MiB])
        time.sleep(4)     # the burst's length (the scenario), not synchronisation
        # 2. then a mix: random 500/502, a 429 burst and resets mid-body.
        # (Rates kept moderate: each failure doubles that file's retry delay,
        # so harsher rates mostly measure the backoff tail.)
        emulator.set_knobs(error_rate=0.1, error_status=502,
                           error_kinds="allocate,upload,file,folder,command",
                           burst_429=10, burst_429_kinds="allocate,upload",
                           reset_rate=0.2, reset_kinds="upload")
        want2 = _write_set(os.path.join(m.path, "mixed"), rng, 20, [0, 5000, 700000, 4 * MiB])
        m.unmount(timeout=300)
        _check(emulator, account.user, "burst/", want)
        _check(emulator, account.user, "mixed/", want2)
    f = emulator.stats()["faults"]
    print("faults injected: %r" % f)
    assert f.get("error", 0) >= 10 and f.get("429", 0) >= 1 and f.get("reset", 0) >= 1, f


def test_30s_outage(account, emulator, mounter):
    """Files written before and during an outage; uploads wait it out."""
    rng = random.Random(12)
    m = mounter(account, allow_errors=True)
    os.mkdir(os.path.join(m.path, "o"))
    with knobs(emulator, dedup="off"):
        before = _write_set(os.path.join(m.path, "o"), rng, 5, [100, MiB])
        emulator.set_knobs(outage=True)
        t0 = time.monotonic()
        during = {}
        for i in range(10):
            data = rng.randbytes(rng.choice([10, 200000, 3 * MiB]))
            with open(os.path.join(m.path, "o", "during%02d.bin" % i), "wb") as f:
                f.write(data)
            during["during%02d.bin" % i] = data
        took = time.monotonic() - t0
        assert took < 20, "writing during the outage took %.1f s: writes wait for the network" % took
        # Local reads of what was written work during the outage.
        with open(os.path.join(m.path, "o", "during03.bin"), "rb") as f:
            assert f.read() == during["during03.bin"]
        time.sleep(max(0.0, 30 - (time.monotonic() - t0)))  # the 30 s outage (scenario)
        emulator.set_knobs(outage=False)
        t1 = time.monotonic()
        m.unmount(timeout=300)
        print("uploads finished %.1f s after the outage ended" % (time.monotonic() - t1))
        _check(emulator, account.user, "o/", dict(before, **during))


def test_five_second_access_tokens(account, emulator, mounter):
    """Uploads spread over ~20 s while access tokens live 5 s: refreshes
    rotate cleanly, no grant errors, everything arrives."""
    rng = random.Random(13)
    m = mounter(account)
    emulator.reset_stats()
    with knobs(emulator, token_lifetime=5, dedup="off", latency_ms=400,
               latency_kinds="allocate,upload"):
        emulator.expire_tokens(account.user)
        want = {}
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 18:
            data = rng.randbytes(rng.choice([100, 50000, MiB]))
            name = "t%03d.bin" % i
            with open(os.path.join(m.path, name), "wb") as f:
                f.write(data)
                f.flush()
                if i % 5 == 0:
                    os.fsync(f.fileno())   # some waits on the server, across refreshes
            want[name] = data
            i += 1
            time.sleep(0.3)                # pacing the writer over ~18 s, not a wait
        m.unmount(timeout=300)
    s = emulator.stats()
    assert s["grant_errors"] == 0, s
    assert s["grants"].get("refresh_token", 0) >= 3, s["grants"]
    _check(emulator, account.user, "", want)
    # The stored session survived: a new mount works without a new login.
    m = mounter(account)
    assert sorted(os.listdir(m.path)) == sorted(want)
    m.unmount()

