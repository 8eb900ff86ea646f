"""Helpers shared by the write-path tests (tests/integration/test_write_*.py).

- encode_name(): the server name jottafs must store for a POSIX name (the
  rclone HEAD Jottacloud encoding, design.md "Names", api doc section 11);
- server views of the emulator: live(), wait_server(), server_md5s();
- clear_cache(): empty an account's cache directory between mounts;
- rclone_for(): an rclone 1.60 remote on the same emulator user, with the
  encoding jottafs writes (the 1.60 default set plus Percent).
Standard library only.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from rclone_helpers import RClone

MiB = 1 << 20

# rclone 1.60's default Jottacloud encoding plus Percent: the set jottafs
# writes (api doc 11.1 "HEAD default"), so that rclone check compares names
# containing '%' the way jottafs stores them.
RCLONE_ENCODING = ("Slash,LtGt,DoubleQuote,Colon,Question,Asterisk,Pipe,Percent,Del,Ctl,"
                   "InvalidUtf8,Dot")

_FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in '"*/:<>?|%'}
_QUOTED = set(_FULLWIDTH.values()) | {"\u2421", "\u2400", "\u201b"} | {
    chr(0x2400 + i) for i in range(1, 0x20)}


def _go_runes(b):
    """Split bytes the way Go's `for range` does: (char, None) for a valid,
    shortest-form sequence, (None, byte) for each byte that is not."""
    out, i = [], 0
    while i < len(b):
        c = b[i]
        n = 1 if c < 0x80 else 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else \
            4 if 0xF0 <= c <= 0xF4 else 0
        if n:
            try:
                ch = b[i:i + n].decode("utf-8")  # strict: no surrogates, no overlongs
                if len(ch) == 1:
                    out.append((ch, None))
                    i += n
                    continue
            except UnicodeDecodeError:
                pass
        out.append((None, c))
        i += 1
    return out


def encode_name(name):
    """Server name of one POSIX name segment (str, surrogateescape allowed, or bytes)."""
    b = os.fsencode(name) if isinstance(name, str) else name
    if b == b".":
        return "\uff0e"
    if b == b"..":
        return "\uff0e\uff0e"
    s = []
    for ch, byte in _go_runes(b):
        if ch is None:
            s.append("\u201b%02X" % byte)
        elif ch == "\0":
            s.append("\u2400")
        elif ord(ch) < 0x20:
            s.append(chr(0x2400 + ord(ch)))
        elif ch == "\x7f":
            s.append("\u2421")
        elif ch in _FULLWIDTH:
            s.append(_FULLWIDTH[ch])
        elif ch in _QUOTED:
            s.append("\u201b" + ch)
        else:
            s.append(ch)
    out = "".join(s)
    if out == "\uff0e":
        return "\u201b\uff0e"
    if out == "\uff0e\uff0e":
        return "\u201b\uff0e\u201b\uff0e"
    return out


def encode_path(rel):
    """Server path (under the mountpoint) of a relative POSIX path."""
    b = os.fsencode(rel) if isinstance(rel, str) else rel
    return "/".join(encode_name(p) for p in b.split(b"/") if p)


def utf16_units(s):
    return len(s.encode("utf-16-le")) // 2


def md5_bytes(b):
    return hashlib.md5(b).hexdigest()


def md5_file(path, chunk=4 * MiB, done=None):
    """MD5 of a file read @chunk bytes at a time; done[0] (when given)
    counts the bytes read so far, for another thread to watch."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for data in iter(lambda: f.read(chunk), b""):
            h.update(data)
            if done is not None:
                done[0] += len(data)
    return h.hexdigest()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def tree(emu, user):
    """Every node the emulator stores below Jotta/Archive: {path: entry}."""
    return {x["path"]: x for x in emu.tree(user)}


def live(emu, user):
    """The live (not trashed) nodes: {path: entry}."""
    return {p: x for p, x in tree(emu, user).items() if x["deleted"] is None}


def wait_for(pred, timeout, what, interval=0.1):
    """Poll pred() until it returns a true value (returned); fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def free_port():
    """A loopback TCP port nothing listens on (just now)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_threads(fn, n, timeout):
    """Run fn(0) .. fn(n - 1) in n threads at once; join each (at most
    @timeout s). The callers collect their own errors."""
    ts = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    return ts


def wait_steady(value, what, quiet=1.0, timeout=60, interval=0.1):
    """Poll value() until it has not changed for @quiet seconds (returned):
    for a counter that in-flight work (read-ahead, a cancelled transfer)
    may still move. Fails after @timeout."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError("timed out after %.0f s waiting for %s to settle (last: %r)"
                         % (timeout, what, last))


def ctl(m, *parts):
    """A path in the mount's control directory (default name)."""
    return os.path.join(m.path, ".jottacloud", *parts)


def status(m):
    """The mount's status.json as a dict."""
    with open(ctl(m, "status.json")) as f:
        return json.load(f)


def wait_idle(m, timeout=60):
    """Wait until the mount has nothing left to upload (status.json: no
    pending file, no transfer): from then on nothing more can arrive."""
    return wait_for(lambda: (lambda s: s if s["pending"]["files"] == 0 and not s["transfers"]
                             else None)(status(m)), timeout, "an empty upload queue")


def wait_server(emu, user, path, md5, timeout=60):
    """Wait until the emulator holds @path (server form) live with content @md5."""
    def ok():
        x = live(emu, user).get(path)
        return x if x and x["type"] == "file" and x["md5"] == md5 else None
    return wait_for(ok, timeout, "%s with md5 %s on the server" % (path, md5), interval=0.2)


def clear_cache(account):
    """Remove everything in the account's cache home (between mounts)."""
    for n in os.listdir(account.cache_home):
        p = os.path.join(account.cache_home, n)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def dir_bytes(path):
    """Disk blocks used below @path, in bytes (du -s -B1)."""
    p = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True)
    return int(p.stdout.split()[0])


def errno_of(fn, *args, **kw):
    """Call fn; return the errno of the OSError it raised, or None if it succeeded."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return None


def rclone_for(emu, account, workdir):
    """rclone 1.60 configured for the account's emulator user (remote 'jc')."""
    if shutil.which("rclone") is None:
        raise AssertionError("rclone is not installed (apt-get install rclone); needed here")
    os.makedirs(str(workdir), exist_ok=True)
    rc = RClone(emu, str(workdir))
    rc.configure(emu.login_token(account.user))
    return rc


def rclone_check(rc, src, remote, *extra):
    """`rclone check` with jottafs's encoding; returns stderr (asserted clean)."""
    p = rc.run("check", str(src), remote, "--jottacloud-encoding", RCLONE_ENCODING,
               *extra, check=False, timeout=600)
    assert p.returncode == 0 and "0 differences found" in p.err, (
        "rclone check %s %s: exit %d\n%s" % (src, remote, p.returncode, p.err[-6000:]))
    return p.err


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 600)
    return subprocess.run([a if isinstance(a, bytes) else str(a) for a in args], **kw)


class knobs:
    """with knobs(emu, bandwidth=..., ...): set emulator knobs, reset them after."""

    def __init__(self, emu, **kw):
        self.emu, self.kw = emu, kw

    def __enter__(self):
        self.emu.set_knobs(**self.kw)
        return self.emu

    def __exit__(self, *exc):
        self.emu.reset_knobs()


def partial_names(emu):
    """Names of the unfinished uploads the emulator holds now (for ignore=)."""
    return {n for n in os.listdir(os.path.join(emu.data_dir, "partial"))
            if not n.startswith("seed-")}


def partial_upload_bytes(emu, ignore=()):
    """Size of the largest unfinished upload the emulator holds right now (its
    partial/ directory), leaving out the names in @ignore (from partial_names()
    before the test's upload began: the emulator is shared by a module).
    upload_bytes in stats() is only counted when a data POST ends."""
    d = os.path.join(emu.data_dir, "partial")
    total = 0
    for n in os.listdir(d):
        if n.startswith("seed-") or n in ignore:
            continue
        try:
            total = max(total, os.path.getsize(os.path.join(d, n)))
        except OSError:
            pass
    return total


def twin_name(name, sname, round=0):
    """The name jottafs shows server entry @sname when it decodes to @name
    like another entry of its folder and is not the canonical spelling
    (net/names.c names_dup_name: 32-bit FNV-1a of the server name, inserted
    before the extension). Short names only (no shortening)."""
    h = 2166136261
    data = sname.encode("utf-8", "surrogateescape")
    if round:
        data += b"\0" + round.to_bytes(4, "little")
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    dot = name.rfind(".")
    stem = dot if 0 < dot < len(name) - 1 else len(name)
    return "%s (jottacloud %08x)%s" % (name[:stem], h, name[stem:])
