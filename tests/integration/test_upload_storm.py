"""A 429 storm during many parallel uploads (issue 9, item 3).

The service answers every allocate and data POST with 429 Too Many Requests
(Retry-After: 1) for a while, as a rate-limited account would, while a few
hundred small files and some big ones are being uploaded by the many
workers of the small-file lane. The whole HTTP client must back off
together (net/http_retry.c, "Throttling"): about one attempt per Retry-After
instead of one per worker per Retry-After. Afterwards every file is on the
service with its MD5, stored once, and nothing went to lost+found.

The storm's length is part of the scenario (a sleep, as in
test_write_faults.py); what is asserted is the emulator's count of 429
answers against the number of Retry-After periods the storm lasted, measured
generously (from before the storm was switched on to after it was switched
off): a slower machine only makes the bound looser, never the test flakier.
"""
import os
import random
import time

from helpers import MiB, knobs, live, md5_bytes, md5_file, wait_for

STORM_S = 8           # how long the service keeps answering 429 (scenario)
RETRY_AFTER_S = 1
# Attempts that may be in flight when the storm starts (every upload worker
# of the default configuration: 4 + 28), all answered 429 once.
IN_FLIGHT = 32
PER_PERIOD = 4        # attempts per Retry-After period the test tolerates


def _write(root, rng, names_sizes):
    os.makedirs(root, exist_ok=True)
    want = {}
    for name, size in names_sizes:
        data = rng.randbytes(size)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        want[name] = data
    return want


def _lost_found(account):
    return [os.path.join(dp, n) for dp, _, fs in os.walk(account.cache_home) for n in fs
            if "lost+found" in dp]


def test_429_storm_backs_off_the_whole_pool(account, emulator, mounter):
    rng = random.Random(429)
    m = mounter(account, allow_errors=True)
    with knobs(emulator, dedup="off", latency_ms=20, latency_kinds="allocate,upload"):
        emulator.reset_stats()
        files = [("s%03d.txt" % i, 4096) for i in range(300)]
        files += [("big%d.bin" % i, 5 * MiB) for i in range(3)]
        t_on = time.monotonic()
        emulator.set_knobs(burst_429=1000000, retry_after=RETRY_AFTER_S,
                           burst_429_kinds="allocate,upload")
        want = _write(os.path.join(m.path, "storm"), rng, files)
        wait_for(lambda: emulator.stats()["faults"].get("429", 0) >= 1, 30,
                 "the first 429 of the storm")
        time.sleep(max(0.0, STORM_S - (time.monotonic() - t_on)))  # the storm (scenario)
        emulator.set_knobs(burst_429=0)
        t_off = time.monotonic()
        n429 = emulator.stats()["faults"].get("429", 0)
        m.unmount(timeout=300)

    periods = (t_off - t_on) / RETRY_AFTER_S + 1
    bound = IN_FLIGHT + PER_PERIOD * periods
    print("429 answers during the storm: %d over %.1f s (bound %.0f)" % (n429, t_off - t_on,
                                                                         bound))
    assert n429 <= bound, (
        "%d requests were answered 429 during a %.1f s storm (Retry-After %d s): the pool did "
        "not back off as a whole (at most %.0f expected)" % (n429, t_off - t_on, RETRY_AFTER_S,
                                                            bound))

    t = live(emulator, account.user)
    bad = []
    for name, data in want.items():
        x = t.get("storm/" + name)
        if x is None:
            bad.append("missing storm/" + name)
        elif x["md5"] != md5_bytes(data) or x["size"] != len(data):
            bad.append("corrupt storm/%s: %r" % (name, x))
        elif x["revisions"] != 1:
            bad.append("storm/%s stored %d revisions" % (name, x["revisions"]))
    assert not bad, "\n".join(bad[:20])
    found = _lost_found(account)
    assert not found, "uploads went to lost+found during a 429 storm: %r" % [
        (p, md5_file(p)) for p in found[:10]]
