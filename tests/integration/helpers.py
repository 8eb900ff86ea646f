"""The shared helpers of the integration tests (emu.py is the emulator's client).

The jottafs daemon, in the sshfs test pattern (Account, Mount, run_jottafs):

- every daemon runs in the foreground (-f) as a child we own, with its own
  XDG_CONFIG_HOME / XDG_CACHE_HOME under the test's temp dir;
- wait_for_mount() fails at once if the daemon died instead of mounting;
- unmount() uses fusermount3 -u and requires the daemon's exit status 0;
- the daemon's output is scanned for sanitizer reports and (unless allowed)
  error lines;
- cleanup() kills and lazily unmounts whatever is left.

rclone 1.60 (Debian, unmodified) driven against the emulator (RClone):
rclone reaches the hard-coded https://{jfs,api,id,up}.jottacloud.com hosts
through the emulator's CONNECT proxy (HTTPS_PROXY) and trusts its test CA
(--ca-cert).  One RClone object is one rclone.conf with one remote, "jc".

The write-path helpers and waits on observable state (wait_for, wait_steady,
wait_idle, wait_server, status/ctl of the control directory):

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
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

MiB = 1 << 20

# rclone 1.60's default Jottacloud encoding plus Percent: the set jottafs
# writes (api doc 11.1 "HEAD default"), so that rclone check compares names
# containing '%' the way jottafs stores them.
RCLONE_ENCODING = ("Slash,LtGt,DoubleQuote,Colon,Question,Asterisk,Pipe,Percent,Del,Ctl,"
                   "InvalidUtf8,Dot")

BIN = os.environ.get("JOTTAFS_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "jottafs")
BIN = os.path.abspath(BIN)

SANITIZER_RE = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"ThreadSanitizer|SUMMARY: UndefinedBehaviorSanitizer)")
ERROR_RE = re.compile(r"jottafs error:")


class DaemonFailed(AssertionError):
    pass


def run_jottafs(args, env=None, input=None, timeout=60, check=True):
    """Run the jottafs binary (subcommand form); returns CompletedProcess."""
    p = subprocess.run([BIN] + list(args), env=env, input=input,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(
            f"jottafs {' '.join(args)} exited {p.returncode}\n"
            f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class Account:
    """A jottafs account (config + cache homes) logged in to an emulator."""

    def __init__(self, emu, tmp_path, name="default", user="testuser"):
        self.emu = emu
        self.name = name
        self.user = user
        self.home = tmp_path / f"home-{name}"
        self.config_home = self.home / "config"
        self.cache_home = self.home / "cache"
        self.config_home.mkdir(parents=True, exist_ok=True)
        self.cache_home.mkdir(parents=True, exist_ok=True)

    @property
    def env(self):
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(self.config_home)
        env["XDG_CACHE_HOME"] = str(self.cache_home)
        env["HOME"] = str(self.home)
        for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                  "ALL_PROXY", "all_proxy"):
            env.pop(k, None)
        return env

    def endpoint_opts(self):
        return f"api_url={self.emu.url},jfs_url={self.emu.url}/jfs"

    def login(self):
        token = self.emu.login_token(self.user)
        return run_jottafs(["login", "--account", self.name, "-o", self.endpoint_opts()],
                           env=self.env, input=token + "\n")

    def run(self, args, **kw):
        return run_jottafs(args, env=self.env, **kw)


class Mount:
    """One running jottafs daemon mounted at @path."""

    def __init__(self, account, path, remote=None, options=(), allow_errors=False,
                 extra_args=(), wrapper=()):
        """@wrapper: a command the daemon is started through (it execs it)."""
        self.account = account
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        opts = ["account=" + account.name] + list(options)
        args = list(wrapper) + [BIN, "-f", "-o", ",".join(opts)] + list(extra_args)
        if remote:
            args.append(remote)
        args.append(self.path)
        self.allow_errors = allow_errors
        self.logfile = open(os.path.join(str(account.home), f"daemon-{os.getpid()}-{id(self)}.log"),
                            "w+")
        self.proc = subprocess.Popen(args, env=account.env, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        self.wait_for_mount()

    def output(self):
        self.logfile.flush()
        with open(self.logfile.name, errors="replace") as f:
            return f.read()

    def wait_for_mount(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonFailed(
                    f"jottafs exited {self.proc.returncode} before mounting:\n{self.output()}")
            if os.path.ismount(self.path):
                return
            time.sleep(0.05)
        self.kill()
        raise DaemonFailed(f"jottafs did not mount within {timeout} s:\n{self.output()}")

    def check_output(self):
        out = self.output()
        m = SANITIZER_RE.search(out)
        if m:
            raise AssertionError(f"sanitizer report in daemon output:\n{out}")
        if not self.allow_errors and ERROR_RE.search(out):
            raise AssertionError(f"error lines in daemon output:\n{out}")
        return out

    def unmount(self, timeout=120):
        """fusermount3 -u, then require exit status 0 and a clean log."""
        subprocess.run(["fusermount3", "-u", self.path], check=True,
                       capture_output=True, timeout=30)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"jottafs did not exit after unmount:\n{self.output()}")
        out = self.check_output()
        assert rc == 0, f"jottafs exited {rc} after unmount:\n{out}"
        return out

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)

    def cleanup(self):
        if self.proc.poll() is None or os.path.ismount(self.path):
            self.kill()
        self.logfile.close()


class RClone:
    def __init__(self, emu, workdir):
        self.emu = emu
        self.conf = os.path.join(workdir, "rclone.conf")
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        self.env.update({"HTTPS_PROXY": emu.url, "HOME": workdir,
                         "XDG_CONFIG_HOME": os.path.join(workdir, ".config"),
                         "XDG_CACHE_HOME": os.path.join(workdir, ".cache")})

    def run(self, *args, check=True, timeout=120):
        cmd = ["rclone", "--config", self.conf, "--ca-cert", self.emu.ca_path] + list(args)
        p = subprocess.run(cmd, env=self.env, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s\nemulator:\n%s" % (
                " ".join(args), p.returncode, p.out, p.err, self.emu.stderr()))
        return p

    def configure(self, token):
        """rclone's standard (personal login token) flow, non-interactively."""
        p = self.run("config", "create", "jc", "jottacloud", "config_type=standard",
                     "config_login_token=" + token, "--non-interactive")
        state = json.loads(p.out)
        # The flow stops at "Use a non-standard device/mountpoint?": answer no.
        while state.get("State"):
            assert state["Option"]["Name"] == "config_non_standard", state
            p = self.run("config", "update", "jc", "--continue", "--state", state["State"],
                         "--result", "false", "--non-interactive")
            state = json.loads(p.out) if p.out.strip() else {}

    def age_token(self):
        """Mark the stored access token expired (as if an hour had passed)."""
        with open(self.conf, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("token = "):
                tok = json.loads(line[len("token = "):])
                tok["expiry"] = "2000-01-01T00:00:00Z"
                lines[i] = "token = " + json.dumps(tok, separators=(",", ":"))
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))

    def config(self):
        """The remote's section of rclone.conf as a dict."""
        out, cur = {}, None
        with open(self.conf, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("["):
                    cur = line.strip("[]")
                elif cur == "jc" and " = " in line:
                    k, _, v = line.partition(" = ")
                    out[k] = v
        return out


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


def deletes_db_rows(account, sql):
    """Rows of @sql over the namespace journal (deletes.db) of @account's
    mount, opened read-only."""
    found = []
    for root, _, files in os.walk(str(account.home)):
        if "deletes.db" in files:
            found.append(os.path.join(root, "deletes.db"))
    assert len(found) == 1, found
    con = sqlite3.connect("file:%s?mode=ro" % found[0], uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


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


class CountingRelay:
    """TCP relay 127.0.0.1:port -> the emulator, counting the bytes that went
    each way (down = emulator to client, counted once the client's socket took
    them) and the connections the client closed.  The emulator counts only
    bodies it sent completely (download_bytes); the relay counts what a client
    that hangs up early really cost.  Used where bytes matter, never where
    speed does (tests/integration/test_read_stream.py, tests/bench/run.py)."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.lock = threading.Lock()
        self.down = 0
        self.up = 0
        self.closed = 0                 # connections the client closed
        self.socks = set()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks.update((c, u))
            threading.Thread(target=self._pump, args=(u, c, "down"), daemon=True).start()
            threading.Thread(target=self._pump, args=(c, u, "up"), daemon=True).start()

    def _pump(self, src, dst, field):
        try:
            while True:
                b = src.recv(256 * 1024)
                if not b:
                    break
                dst.sendall(b)
                with self.lock:
                    setattr(self, field, getattr(self, field) + len(b))
        except OSError:
            pass
        with self.lock:
            if field == "up":           # the client's side ended
                self.closed += 1
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            for s in (src, dst):
                if s in self.socks:
                    self.socks.discard(s)
                    s.close()

    def reset(self):
        with self.lock:
            self.down = self.up = 0

    def counts(self):
        with self.lock:
            return {"down": self.down, "up": self.up}

    def bytes_down(self):
        with self.lock:
            return self.down

    def closed_by_client(self):
        with self.lock:
            return self.closed

    def close(self):
        self.lsock.close()
        with self.lock:
            for s in list(self.socks):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
