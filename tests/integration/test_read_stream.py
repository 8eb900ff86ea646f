"""What a read costs on the wire (issue 10): a probe of a cold file is one
small ranged GET; a sequential reader is followed by one stream that runs a
bounded way ahead of it and stops when the reader goes away or closes.

The emulator counts only bodies it sent completely (download_bytes), so a
cancelled stream shows 0 there: the bytes are counted by a TCP relay in
front of the emulator, as tests/bench/run.py does.
"""
import os
import subprocess

from helpers import Account, CountingRelay, knobs, wait_for, wait_steady

MiB = 1 << 20


class _Via:
    """The emulator as seen through @relay (its URL), for Account."""

    def __init__(self, emu, relay):
        self._emu = emu
        self.url = relay.url

    def __getattr__(self, name):
        return getattr(self._emu, name)


def relayed(emulator, account, tmp_path, mounter, options=()):
    relay = CountingRelay(emulator.port)
    acc = Account(_Via(emulator, relay), tmp_path, name="relayed", user=account.user)
    acc.login()
    return relay, mounter(acc, options=list(options))


def test_probe_of_a_cold_file_is_one_small_request(account, emulator, mounter, tmp_path):
    """head -c 65536 of a cold file: one ranged GET of 240 KiB. The kernel
    asks for 240 KiB (head's first read of 16 KiB, then read-ahead of 32,
    64 and 128 KiB): the GET of the first read brings all of it."""
    emulator.seed([{"path": "big.bin", "size": 256 * MiB, "fill": "zero"}], user=account.user)
    relay, m = relayed(emulator, account, tmp_path, mounter)
    try:
        os.listdir(m.path)
        wait_steady(relay.bytes_down, "the listing")
        before = relay.bytes_down()
        emulator.reset_stats()
        p = subprocess.run(["head", "-c", "65536", os.path.join(m.path, "big.bin")],
                           capture_output=True, check=True)
        assert p.stdout == bytes(65536)
        got = wait_steady(relay.bytes_down, "the read-ahead in flight") - before
        s = emulator.stats()
        print("64 KiB probe: %d bytes on the wire, %d GETs" % (got, s["requests"]["download"]))
        assert s["requests"]["download"] == 1, s["requests"]
        assert got <= 240 * 1024 + 4096      # the body, and the answer's headers
        m.unmount()
    finally:
        relay.close()


def _read_zeros(f, n):
    """Read @n bytes of zeros from @f sequentially, 128 KiB at a time."""
    while n:
        b = f.read(min(n, 128 * 1024))
        assert b == bytes(len(b)) and b
        n -= len(b)


def _stream_then(account, emulator, mounter, tmp_path, away):
    size = 512 * MiB
    emulator.seed([{"path": "big.bin", "size": size, "fill": "zero"}], user=account.user)
    relay, m = relayed(emulator, account, tmp_path, mounter)
    try:
        os.listdir(m.path)
        emulator.reset_stats()
        with open(os.path.join(m.path, "big.bin"), "rb", buffering=0) as f:
            _read_zeros(f, 2 * MiB)
            # the stream is running: it began after the first MiB
            wait_for(lambda: emulator.stats()["requests"]["download"] >= 2, 30,
                     "the stream's GET")
            closed = relay.closed_by_client()
            away(f)
        # Cancelled: its connection is dropped at once (a stream whose reader
        # merely paused would end only after 15 s idle).
        wait_for(lambda: relay.closed_by_client() > closed, 10, "the stream cancelled")
        got = wait_steady(relay.bytes_down, "the stream to stop", quiet=2.0)
        print("2 MiB read, then away: %d bytes on the wire of a %d-byte file" % (got, size))
        # What was read, the stream's window (as much again), socket buffers.
        assert got < 32 * MiB
        m.unmount()
    finally:
        relay.close()


def test_stream_stops_at_close(account, emulator, mounter, tmp_path):
    """A sequential read of 2 MiB, then close: the stream that followed the
    reader stops far short of the file's end."""
    _stream_then(account, emulator, mounter, tmp_path, lambda f: None)


def test_stream_stops_at_seek_away(account, emulator, mounter, tmp_path):
    """A sequential read of 2 MiB, then a read 400 MiB further (the file stays
    open): the stream stops; the far read costs a small GET of its own."""
    def away(f):
        f.seek(400 * MiB)
        assert f.read(4096) == bytes(4096)
    _stream_then(account, emulator, mounter, tmp_path, away)


def test_parts_side_by_side_read_back_whole(account, emulator, mounter, tmp_path):
    """-o read_streams=4: a sequential reader's window is fetched in parts by
    several ranged GETs side by side; every byte arrives once, in order for
    the reader, and the whole-file MD5 (parts past the hashed prefix are read
    back for it) verifies."""
    size = 48 * MiB + 4321
    emulator.seed([{"path": "r.bin", "size": size, "fill": "random"}], user=account.user)
    want = emulator.content("r.bin", user=account.user)
    relay, m = relayed(emulator, account, tmp_path, mounter, options=["read_streams=4"])
    try:
        os.listdir(m.path)
        emulator.reset_stats()
        relay.reset()
        with open(os.path.join(m.path, "r.bin"), "rb") as f:
            got = f.read()
        assert got == want
        s = emulator.stats()
        # the 1 MiB probe phase, then parts of at most 8 MiB
        assert s["requests"]["download"] >= 6, s["requests"]
        assert s["download_bytes"] == size, s
        wire = wait_steady(relay.bytes_down, "the downloads", quiet=1.0)
        assert wire < size + size // 20, (wire, size)       # TLS and HTTP on top
        m.unmount()
    finally:
        relay.close()


def test_parts_stop_at_seek_away(account, emulator, mounter, tmp_path):
    """-o read_streams=4, downloads slowed to 2 MiB/s each: a read far away
    cancels the parts in flight (their connections are dropped, not drained),
    and the far read costs a small GET of its own."""
    size = 256 * MiB
    emulator.seed([{"path": "big.bin", "size": size, "fill": "zero"}], user=account.user)
    relay, m = relayed(emulator, account, tmp_path, mounter, options=["read_streams=4"])
    try:
        os.listdir(m.path)
        with knobs(emulator, bandwidth=2 * MiB, bandwidth_kinds="download"):
            emulator.reset_stats()
            with open(os.path.join(m.path, "big.bin"), "rb", buffering=0) as f:
                _read_zeros(f, 3 * MiB)
                # parts of the window past 3 MiB are in flight (1 MiB each
                # takes half a second at this speed)
                assert emulator.stats()["requests"]["download"] >= 3
                closed = relay.closed_by_client()
                f.seek(200 * MiB)
                assert f.read(4096) == bytes(4096)
                wait_for(lambda: relay.closed_by_client() > closed, 10, "the parts cancelled")
                got = wait_steady(relay.bytes_down, "the parts to stop", quiet=2.0)
        print("3 MiB read, then away: %d bytes on the wire" % got)
        # what was read, the window (as much again), the far read's probe
        assert got < 8 * MiB
        m.unmount()
    finally:
        relay.close()
