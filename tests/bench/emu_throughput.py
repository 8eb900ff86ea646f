#!/usr/bin/env python3
"""Throughput of the emulator itself on loopback: one big upload, one big download.

    python3 tests/bench/emu_throughput.py [--size-mib 1024] [--repeat 3]

The client side is made cheap on purpose (sendfile for the upload body,
recv_into a reused buffer for the download) so the figure is the emulator's.
Prints MB/s (10^6 bytes per second) for each run and the best one, and the
emulator's own CPU time per GB (all its threads, from /proc), which stays
meaningful when other jobs share the machine; exits 1 if the best run of
either direction is below --min-mbps (default 300).
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from emu import Emulator  # noqa: E402


def make_file(path, size):
    h = hashlib.md5()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            # Vary the blocks cheaply so the content is not one repeated MiB.
            b = block if i % 2 == 0 else block[::-1]
            b = b[:left]
            f.write(b)
            h.update(b)
            left -= len(b)
            i += 1
    return h.hexdigest()


def read_response(sock, sink=None):
    """Read one HTTP/1.1 response with Content-Length; returns (status, body or count)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    if sink is None:
        body = rest
        while len(body) < length:
            body += sock.recv(65536)
        return status, body
    got = len(rest)
    mv = memoryview(sink)
    while got < length:
        n = sock.recv_into(mv, min(len(mv), length - got))
        if not n:
            raise ConnectionError("closed in body")
        got += n
    return status, got


def cpu_seconds(pid):
    """user+system CPU time of a process, all threads (Linux /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upload(e, token, path, size, digest):
    body = json.dumps({"bytes": size, "md5": digest, "path": "/jfs/Jotta/Archive/bench.bin",
                       "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"})
    st, _, data = e.request("POST", "/files/v1/allocate", body=body.encode(), token=token,
                            headers={"Content-Type": "application/json"})
    alloc = json.loads(data)
    assert st == 200 and alloc["state"] == "INCOMPLETE", alloc
    u = urllib.parse.urlsplit(alloc["upload_url"])
    s = socket.create_connection((u.hostname, u.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    t0 = time.perf_counter()
    s.sendall(("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (u.path, u.netloc, token, size)).encode())
    with open(path, "rb") as f:
        s.sendfile(f)
    st, data = read_response(s)
    dt = time.perf_counter() - t0
    s.close()
    res = json.loads(data)
    assert st == 201 and res["md5"] == digest and res["bytes"] == size, (st, data[:200])
    return dt


def download(e, token, username, size):
    s = socket.create_connection(("127.0.0.1", e.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sink = bytearray(4 << 20)
    t0 = time.perf_counter()
    s.sendall(("GET /jfs/%s/Jotta/Archive/bench.bin?mode=bin HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (username, token)).encode())
    st, got = read_response(s, sink)
    dt = time.perf_counter() - t0
    s.close()
    assert st == 200 and got == size, (st, got)
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-mbps", type=float, default=300.0)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the source file and emulator data go (default /dev/shm: "
                         "on a disk, page-cache writeback throttling, not the emulator, "
                         "sets the upload speed)")
    args = ap.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="emu-bench-") as tmp:
        src = os.path.join(tmp, "src.bin")
        digest = make_file(src, size)
        with Emulator(data_dir=os.path.join(tmp, "data"), knobs={"dedup": "off"}) as e:
            tok = e.tokens("bench")["access_token"]
            user = e.username("bench")
            ups, downs = [], []
            for i in range(args.repeat):
                c0 = cpu_seconds(e.proc.pid)
                dt = upload(e, tok, src, size, digest)
                c1 = cpu_seconds(e.proc.pid)
                ups.append(size / dt / 1e6)
                dt = download(e, tok, user, size)
                c2 = cpu_seconds(e.proc.pid)
                downs.append(size / dt / 1e6)
                print("run %d: upload %.0f MB/s (%.2f CPU s/GB), download %.0f MB/s "
                      "(%.2f CPU s/GB), %d MiB" % (i + 1, ups[-1], (c1 - c0) / size * 1e9,
                                                   downs[-1], (c2 - c1) / size * 1e9,
                                                   args.size_mib))
            rc = e.stop()
            assert rc == 0, e.stderr()
    print("best: upload %.0f MB/s, download %.0f MB/s" % (max(ups), max(downs)))
    if max(ups) < args.min_mbps or max(downs) < args.min_mbps:
        print("below %.0f MB/s" % args.min_mbps)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
