#!/usr/bin/env python3
"""make bench: jottafs against `rclone mount` on the same emulator, in one run.

    JOTTAFS_BIN=build/jottafs /usr/bin/python3 tests/bench/run.py [--quick] [--only NAME]

One emulator (tests/emulator/jottaemu, dedup off, latency knob 20 ms on every
request unless a workload says otherwise) serves both clients.  Each workload
has its own emulator user; both sides see the same seeded data, write into
their own folders, run one after the other (never at the same time) and get a
fresh mount with an empty cache each time:

  find   cold `find` over FILES files in FOLDERS folders (seeded), then a warm
         second `find` on the same mount: seconds and emulator requests.
  small  `cp -r` of a local tree of N x 4 KiB files: seconds until cp returned
         and until every file is on the server with the right MD5.
  big    one big file (1 GiB): cp time next to `dd if=/dev/zero bs=1M
         conv=fsync` of as many bytes on the cache disk; close() -> allocate
         -> server-confirmed; the upload's MB/s and the emulator's CPU next to
         the raw API upload of the same bytes (allocate + data POST with
         `curl` through the same CONNECT proxy and TLS); references each run.
  tar    `tar -xf` of a tarball of /usr/include (regular files and folders:
         the service has no symlinks, nor two names equal but for case; about
         8,000 files, 130 MiB) into the
         mount: seconds until tar returned and until the service matches
         (every file there with its size and MD5, no other file left).
  rsync  first `rsync -a /usr/include/ MNT/x/` (the same tree): the same
         figures (rsync's exit 23, attributes it could not set, is accepted:
         the service check decides).
  git    `git add -A` in a fresh repo in the mount holding 2,000 files of
         121 bytes (already on the service): seconds, and requests until the
         emulator is quiet for 6 s (longer than rclone's write-back).
  read   `head -c 65536` of a 1 GiB file: bytes the emulator sent (counted
         by a TCP relay, see below); then a cold sequential read of the whole
         file at latency 0: MB/s and daemon CPU-s/GiB, next to `curl` of the
         same bytes (one stream, same CONNECT proxy and TLS) in the same run.
  thumb  the thumbnail probe: `head -c 65536` of each of 100 files of 50 MiB
         (one after the other, cold mount): bytes on the wire per file (relay),
         download requests per file, seconds.  The files share one content
         (one 50 MiB blob in the emulator instead of 5 GiB); neither client
         caches by content, so this changes nothing they fetch.
  fio    fio 4 KiB random reads (psync, 10 s) of a 256 MiB file that was read
         whole with `cat` first (rclone: --vfs-cache-mode full, so it keeps
         it), buffered and O_DIRECT: IOPS, daemon CPU per 10k reads, daemon
         read syscalls and context switches per I/O.  fio drops the page cache
         at start (invalidate=1) and its random map reads every block once per
         pass, so in the buffered run too nearly every I/O is a FUSE READ that
         the daemon answers from its cache: the figure is the daemon's
         per-request cost, not the kernel page cache's.
  rss    daemon VmRSS after `ls -f` of a directory with 100k entries.
  empty  `cp -r` of 1,000 empty files: seconds until on the server, requests.
  rm     `rm -rf` of a seeded 2,000-file tree: seconds until rm returned and
         until the service no longer has any of it, requests.

Repetition: the headline workloads (REPEATED: small, empty, rm, big, tar,
rsync, read) run --repeat times (default 3, --quick 1), the sides taking turns;
the table shows the median with the best run next to it ("min" for times,
"max" for MB/s), the JSON every run.  A workload stops repeating once one
side's run took longer than --repeat-cut (150 s; the note says so) or the
--budget (3600 s) runs short; the others run once.  --quick takes 300 files of
the tree, 200 git files, 10 probe files of 8 MiB, a 64 MiB fio file for 3 s.

Runtime (2 shared cores, measured under load from other jobs, 2026-12): --quick
a few minutes.  Full sizes, one run each: find..big 4 min, tar 4 min (jottafs
100 s, rclone 120 s until the service matched), rsync 7 min with jottafs cut
at the 300 s step timeout it then needed (--step-timeout is 600 s now), git,
read, thumb, fio and rss about 10 min together.  The default --repeat 3 runs
small, empty, rm, big, tar and read three times: about 50 minutes in all, under
the --budget of 3600 s, which cuts what is left rather than run longer.

Every workload reports the daemon's CPU seconds (utime + stime of the mount
process while the workload ran); the byte-moving ones also per GiB, and the
file ones requests per file.

rclone is Debian's unmodified 1.60: it reaches its hard-coded
https://*.jottacloud.com hosts through the emulator's CONNECT proxy and trusts
the emulator's CA.  `rclone mount` runs with its defaults for reads and with
`--vfs-cache-mode full` (defaults otherwise, so a 5 s --vfs-write-back) for
the write workloads.  Both clients reach the emulator the same way: the real
https hosts through its CONNECT proxy, with TLS (jottafs with cafile=, rclone
with --ca-cert).  --jottafs-plain-http lets jottafs talk plain HTTP to the
emulator instead (api_url/jfs_url), which flatters it: never for comparisons.

Why a relay for `head`: the emulator adds download_bytes only when a body was
sent completely, so a client that asks for a large range and hangs up after
64 KiB shows 0 there.  The relay counts what actually went to the client.

The emulator's data lives on /dev/shm (its blob writes would otherwise
measure this VM's disk writeback); both clients' caches and the local source
files are in a scratch directory on disk, as a user's would be.

Output: a table (ratio > 1 means jottafs is better; the formula is
rclone/jottafs for lower-is-better rows and jottafs/rclone for throughput)
and JSON in $(dir JOTTAFS_BIN)/bench.json (--json to change).  A side that
cannot run reports "failed: <reason>" and the other side still runs.  Every
subprocess has a timeout; mounts are unmounted and processes killed in
`finally`.  Standard library only.
"""

import argparse
import hashlib
import http.client
import json
import os
import pathlib
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import helpers  # noqa: E402
from emu import Emulator  # noqa: E402
from emu_throughput import make_file  # noqa: E402
from helpers import RClone, wait_steady  # noqa: E402

WORKLOADS = ("find", "small", "empty", "rm", "big", "tar", "rsync", "git", "read", "thumb",
             "fio", "rss")
# Workloads run --repeat times (min and median of the runs are shown): the
# issue-9/10 headline rows.  The others run once.
REPEATED = ("small", "empty", "rm", "big", "tar", "rsync", "read")
RCLONE_HOSTS_ISSUER = "https://id.jottacloud.com"
MiB = 1 << 20


class SideFailed(Exception):
    """One side of a workload could not produce its figure (the reason is shown)."""


class Interrupted(BaseException):
    pass


class Stat(float):
    """The median of a side's repeated runs of one figure, with their min and count."""

    def __new__(cls, values):
        v = float(statistics.median(values))
        self = super().__new__(cls, v)
        self.min = float(min(values))
        self.max = float(max(values))
        self.n = len(values)
        return self


def merge_runs(runs):
    """One dict from the dicts of repeated runs: a number that every run has
    becomes a Stat (median, min); anything else comes from the first run."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [r.get(k) for r in runs]
            if all(isinstance(x, (int, float)) for x in vals):
                out[k] = Stat(vals)
    out["runs"] = len(runs)
    if len(runs) > 1:
        out["each_run"] = [{k: v for k, v in r.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)}
                           for r in runs]
    return out


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def short(exc, limit=400):
    """A one-paragraph reason for the table: message of @exc, whitespace folded."""
    s = " ".join(str(exc).split())
    if not s:
        s = type(exc).__name__
    return s if len(s) <= limit else s[:limit - 3] + "..."


# ------------------------------------------------------------------ processes

def run_cmd(args, timeout, env=None, stdin_bytes=None):
    """Run @args in its own process group; the whole group is killed on timeout.
    Returns (returncode, stdout bytes, stderr bytes, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.PIPE if stdin_bytes is not None
                         else subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = p.communicate(stdin_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        raise SideFailed("%s timed out after %d s" % (" ".join(args[:3]), timeout))
    return p.returncode, out, err, time.monotonic() - t0


def checked(args, timeout, what=None, **kw):
    """run_cmd that turns a non-zero exit into SideFailed with its stderr."""
    rc, out, err, dt = run_cmd(args, timeout, **kw)
    if rc != 0:
        raise SideFailed("%s exited %d: %s" % (what or args[0], rc,
                                               err.decode("utf-8", "replace")[-300:]))
    return out, dt


def proc_io(pid):
    """/proc/PID/io counters of @pid (all its threads) as ints."""
    with open("/proc/%d/io" % pid) as f:
        return {k: int(v) for k, _, v in (ln.partition(":") for ln in f)}


def ctx_switches(pid):
    """Voluntary + involuntary context switches of all live threads of @pid."""
    n = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.split(":")[0] in ("voluntary_ctxt_switches",
                                              "nonvoluntary_ctxt_switches"):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def proc_status(pid):
    """VmRSS and VmHWM of @pid in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")
GiB = 1 << 30


def cpu_seconds(pid):
    """utime + stime of process @pid so far (its own threads, not children)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def fusermount_lazy(path):
    try:
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass


def live_files(tree, prefix):
    """Paths of the files below @prefix in an emulator tree (pre-order) that are
    neither deleted nor below a deleted folder."""
    gone, live = set(), set()
    for x in tree:
        p = x["path"]
        if not p.startswith(prefix + "/"):
            continue
        parent = p.rsplit("/", 1)[0]
        if x["deleted"] or parent in gone:
            gone.add(p)
        elif x["type"] == "file":
            live.add(p)
    return live


# ------------------------------------------------------------------ the two clients

class Mounted:
    """One mounted client: path, daemon pid, stop() (idempotent)."""

    def __init__(self, side, path, proc, stop_fn, log_fn):
        self.side = side
        self.path = path
        self.proc = proc
        self.pid = proc.pid
        self._stop = stop_fn
        self.log = log_fn
        self.stopped = False
        self.warnings = []

    def stop(self):
        if not self.stopped:
            self.stopped = True
            w = self._stop()
            if w:
                self.warnings.append(w)


class TlsAccount(helpers.Account):
    """A jottafs account that reaches the emulator like rclone does: the real
    https hosts through the emulator's CONNECT proxy, trusting its CA."""

    proxy = None

    @property
    def env(self):
        env = super().env
        env["HTTPS_PROXY"] = self.proxy or self.emu.url
        return env

    def endpoint_opts(self):
        return ("api_url=https://api.jottacloud.com,jfs_url=https://jfs.jottacloud.com/jfs,"
                "cafile=" + self.emu.ca_path)

    def login(self):
        token = self.emu.login_token(self.user, issuer=RCLONE_HOSTS_ISSUER)
        return helpers.run_jottafs(["login", "--account", self.name, "-o", self.endpoint_opts()],
                               env=self.env, input=token + "\n")


class JottaSide:
    name = "jottafs"

    def __init__(self, bench, user):
        self.b = bench
        self.user = user

    def flags(self, write):
        how = ("https hosts via the emulator's CONNECT proxy, cafile=ca.pem" if self.b.tls
               else "api_url=URL,jfs_url=URL/jfs (plain HTTP)")
        return "jottafs -f -o account=NAME,%s MNT (defaults otherwise)" % how

    def mount(self, tag, write=False, relay=None):
        """Fresh account home (empty cache), login, mount Jotta/Archive at a new dir."""
        base = pathlib.Path(self.b.work) / "jottafs"
        base.mkdir(exist_ok=True)
        name = "%s-%d" % (tag, self.b.next_id())
        if self.b.tls:
            acc = TlsAccount(self.b.emu, base, name=name, user=self.user)
            acc.proxy = relay.url if relay else None
        else:
            acc = helpers.Account(self.b.emu, base, name=name, user=self.user)
        try:
            acc.login()
        except (AssertionError, OSError, subprocess.TimeoutExpired) as e:
            raise SideFailed("jottafs login: " + short(e))
        url = relay.url if (relay and not self.b.tls) else self.b.emu.url
        opts = ([acc.endpoint_opts()] if self.b.tls
                else ["api_url=" + url, "jfs_url=" + url + "/jfs"])
        path = os.path.join(self.b.work, "mnt", name)
        try:
            m = helpers.Mount(acc, path, options=opts)
        except (AssertionError, OSError) as e:
            raise SideFailed("jottafs mount: " + short(e))

        def stop():
            try:
                m.unmount(timeout=120)
                return None
            except (AssertionError, OSError, subprocess.SubprocessError) as e:
                return "jottafs unmount: " + short(e, 300)
            finally:
                m.cleanup()
        h = Mounted(self, path, m.proc, stop, m.output)
        self.b.live.append(h)
        return h


class RcloneSide:
    name = "rclone"

    def __init__(self, bench, user):
        self.b = bench
        self.user = user
        self.rc = None

    @staticmethod
    def flags(write):
        return ("rclone mount jc: MNT" + (" --vfs-cache-mode full" if write else "")
                + " (defaults otherwise; cache mode %s)" % ("full" if write else "off"))

    def _configure(self):
        if self.rc is None:
            d = os.path.join(self.b.work, "rclone-" + self.user)
            os.makedirs(d, exist_ok=True)
            rc = RClone(self.b.emu, d)
            try:
                rc.configure(self.b.emu.login_token(self.user, issuer=RCLONE_HOSTS_ISSUER))
            except (AssertionError, OSError, subprocess.SubprocessError, ValueError) as e:
                raise SideFailed("rclone config: " + short(e))
            self.rc = rc
        return self.rc

    def mount(self, tag, write=False, relay=None):
        rc = self._configure()
        name = "%s-rc-%d" % (tag, self.b.next_id())
        path = os.path.join(self.b.work, "mnt", name)
        os.makedirs(path)
        env = dict(rc.env)
        if relay:
            env["HTTPS_PROXY"] = relay.url
        logpath = os.path.join(self.b.work, name + ".log")
        args = ["rclone", "--config", rc.conf, "--ca-cert", self.b.emu.ca_path, "mount",
                "jc:", path, "--cache-dir", os.path.join(self.b.work, name + "-cache")]
        if write:
            args += ["--vfs-cache-mode", "full"]
        logf = open(logpath, "w+")
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT)

        def output():
            logf.flush()
            with open(logpath, errors="replace") as f:
                return f.read()

        def stop():
            warn = None
            try:
                if proc.poll() is None:
                    r = subprocess.run(["fusermount3", "-u", path], capture_output=True,
                                       timeout=30)
                    if r.returncode != 0:
                        warn = "rclone unmount: " + short(r.stderr.decode(errors="replace"))
                    proc.wait(timeout=60)
                if proc.returncode not in (0, None):
                    warn = warn or "rclone mount exited %d: %s" % (proc.returncode,
                                                                  short(output()[-300:]))
            except (subprocess.TimeoutExpired, OSError) as e:
                warn = "rclone unmount: " + short(e)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
                fusermount_lazy(path)
                logf.close()
            return warn

        h = Mounted(self, path, proc, stop, output)
        self.b.live.append(h)
        deadline = time.monotonic() + 30
        while not os.path.ismount(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                h.stop()
                raise SideFailed("rclone mount did not come up (exit %s): %s"
                                 % (proc.returncode, short(output()[-400:])))
            time.sleep(0.05)
        return h


# ------------------------------------------------------------------ the bench

class Bench:
    def __init__(self, args):
        self.a = args
        self.tls = not args.jottafs_plain_http
        self.work = args.workdir
        self.emu = None
        self.live = []          # every Mounted, for the final clean-up
        self.relays = []
        self._id = 0
        self.rows = []
        self.details = {}
        self.notes = []
        self._big_local = None
        self._last_durations = {}
        self.deadline = time.monotonic() + args.budget

    def left(self, t):
        """@t seconds, cut to what is left of the --budget (at least 10 s)."""
        return max(10, min(t, int(self.deadline - time.monotonic())))

    def next_id(self):
        self._id += 1
        return self._id

    # ---- emulator helpers

    def latency(self, ms):
        self.emu.set_knobs(latency_ms=ms, latency_kinds="*")

    def total_requests(self, stats=None):
        s = stats or self.emu.stats()
        return sum(s["requests"].values())

    def warm_memory(self, nbytes):
        """Before a timed read: flush dirty pages, then touch @nbytes of fresh
        memory in a child process and free it.  This machine is a VM whose
        kernel reports free pages to the host (free page reporting); the first
        touch of such a page afterwards costs a host fault, about 1-1.5 CPU-s
        per GiB of new page cache in whichever process touches it (measured:
        a cold 1 GiB read at 3.4-3.6 daemon CPU-s/GiB with warm memory,
        5-6 without).  The pages touched here are the next ones handed out, so
        every client (and curl) is timed on the same, ordinary footing."""
        os.sync()
        try:
            with open("/proc/meminfo") as f:
                avail = int(next(l for l in f if l.startswith("MemAvailable:")).split()[1]) * 1024
        except (OSError, StopIteration, ValueError):
            return
        nbytes = min(nbytes, avail // 2)
        subprocess.run([sys.executable, "-c", WARM_SCRIPT, str(nbytes)], check=False,
                       timeout=self.left(120))

    def settle(self, quiet=0.6, limit=15):
        """Wait until the emulator has seen no request for @quiet seconds."""
        deadline = time.monotonic() + limit
        last = self.total_requests()
        still = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.15)
            n = self.total_requests()
            if n != last:
                last, still = n, time.monotonic()
            elif time.monotonic() - still >= quiet:
                return
        self.notes.append("emulator never went quiet for %.1f s (background traffic)" % quiet)

    @staticmethod
    def by_kind(stats):
        r = {k: v for k, v in stats["requests"].items() if v}
        if stats.get("commands"):
            r["commands"] = dict(stats["commands"])
        return r

    def wait_on_server(self, user, expected, n_uploads, timeout, poll=0.25, prefix=None):
        """Poll until every path in @expected ({path: (size, md5)}) has a completed
        revision with that size and MD5 and, with @prefix, no other live file is
        below @prefix (a temporary name left behind does not match).  The
        (costly) tree walk runs when the emulator has seen @n_uploads
        upload/instant requests since the last stats reset, and otherwise at
        least every 3 s (longer when the walk itself is slow).  Returns the
        monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        last_tree = 0.0
        every = 3.0
        missing = len(expected)
        extra = 0
        while time.monotonic() < deadline:
            s = self.emu.stats()
            now = time.monotonic()
            if (s["requests"]["upload"] + s["instant_uploads"] >= n_uploads
                    or now - last_tree >= every):
                last_tree = now
                t = {x["path"]: x for x in self.emu.tree(user)}
                every = max(3.0, 10 * (time.monotonic() - now))
                missing = 0
                for p, (size, md5) in expected.items():
                    x = t.get(p)
                    if not x or x["deleted"] or x["size"] != size or x["md5"] != md5:
                        missing += 1
                extra = 0
                if prefix and not missing:
                    extra = len(live_files(t.values(), prefix) - set(expected))
                if missing == 0 and extra == 0:
                    return now
            time.sleep(poll)
        raise SideFailed("%d of %d files not on the server after %d s%s"
                         % (missing, len(expected), timeout,
                            ", %d files too many" % extra if extra else ""))

    def big_local(self):
        """The local big file (random, created once): (path, size, md5)."""
        if self._big_local is None:
            size = self.a.big_mib * MiB
            path = os.path.join(self.work, "local", "big.bin")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            log("creating local %d MiB file" % self.a.big_mib)
            self._big_local = (path, size, make_file(path, size))
        return self._big_local

    def raw_upload(self, user, server_path, path, size, md5):
        """The raw API upload of the same bytes the way the jottafs client sends
        them: allocate, then the data POST of the file (libcurl, Content-Length,
        no 100-continue), both with `curl` through the emulator's CONNECT proxy
        and TLS like the two clients.  Returns (seconds for both calls, curl's
        CPU seconds, the emulator's CPU seconds)."""
        tok = self.emu.tokens(user)["access_token"]
        common = ["curl", "-sS", "--fail", "--proxy", self.emu.url, "--cacert",
                  self.emu.ca_path, "-H", "Authorization: Bearer " + tok]
        body = json.dumps({"bytes": size, "md5": md5,
                           "path": "/jfs/Jotta/Archive/" + server_path,
                           "created": "2024-01-01T00:00:00Z",
                           "modified": "2024-01-01T00:00:00Z"})
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        e0 = cpu_seconds(self.emu.proc.pid)
        t0 = time.monotonic()
        out, _ = checked(common + ["-H", "Content-Type: application/json", "--data-binary",
                                   body, "https://api.jottacloud.com/files/v1/allocate"],
                         timeout=60, what="curl allocate")
        alloc = json.loads(out)
        if alloc.get("state") != "INCOMPLETE" or not alloc.get("upload_url"):
            raise SideFailed("raw allocate: %s" % short(out, 200))
        out, _ = checked(common + ["-X", "POST", "-H", "Content-Type: application/octet-stream",
                                   "-H", "Expect:", "-T", path, alloc["upload_url"]],
                         timeout=self.left(self.a.step_timeout), what="curl upload")
        dt = time.monotonic() - t0
        ecpu = cpu_seconds(self.emu.proc.pid) - e0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if json.loads(out).get("md5") != md5:
            raise SideFailed("raw upload: %s" % short(out, 200))
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return dt, cpu, ecpu

    def dd_fsync(self, size):
        """`dd if=/dev/zero bs=1M conv=fsync` of @size bytes into the scratch
        directory (the disk both clients' caches are on): seconds."""
        target = os.path.join(self.work, "dd-fsync.bin")
        try:
            _, dt = checked(["dd", "if=/dev/zero", "of=" + target, "bs=1M",
                             "count=%d" % (size // MiB), "conv=fsync", "status=none"],
                            timeout=self.left(self.a.step_timeout), what="dd")
        finally:
            if os.path.exists(target):
                os.unlink(target)
        os.sync()
        return dt

    # ---- rows

    def row(self, workload, metric, unit, better, vals, note="", formula=None, ref=None):
        """vals: {"jottafs": number or SideFailed/str, "rclone": ...}; a Stat
        (repeated runs) shows its median with the best run next to it.
        @ref: (what, number or str) a third client's figure for the reference column."""
        out = {"workload": workload, "metric": metric, "unit": unit, "better": better,
               "note": note}
        for side in ("jottafs", "rclone"):
            v = vals.get(side)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[side] = float(v) if isinstance(v, Stat) else v
                out[side + "_error"] = None
                if isinstance(v, Stat) and v.n > 1:
                    out[side + "_runs"] = v.n
                    out[side + "_min"] = v.min
                    out[side + "_max"] = v.max
                    out[side + "_best"] = v.min if better == "lower" else v.max
            else:
                out[side] = None
                out[side + "_error"] = str(v) if v is not None else "not run"
        j, r = out["jottafs"], out["rclone"]
        out["ratio_formula"] = formula or ("rclone/jottafs" if better == "lower"
                                           else "jottafs/rclone")
        ratio = None
        if j is not None and r is not None:
            num, den = (r, j) if out["ratio_formula"] == "rclone/jottafs" else (j, r)
            if den:
                ratio = num / den
            elif num == 0:
                ratio = 1.0
        out["ratio"] = ratio
        out["ref"] = out["ref_what"] = None
        if ref is not None:
            out["ref_what"], rv = ref
            if isinstance(rv, (int, float)) and not isinstance(rv, bool):
                out["ref"] = float(rv)
                if isinstance(rv, Stat) and rv.n > 1:
                    out["ref_best"] = rv.min if better == "lower" else rv.max
                    out["ref_runs"] = rv.n
            else:
                out["ref_error"] = str(rv)
        self.rows.append(out)

    def run_sides(self, workload, fn, sides, repeat=None):
        """Run fn(side) for each side, --repeat times for the REPEATED workloads
        (the sides take turns: j, r, j, r, ...), and merge the runs (merge_runs).
        A failed run is noted; a side whose every run failed reports
        'failed: reason'.  No further repeats once a run took longer than
        --repeat-cut seconds or the --budget is short."""
        if repeat is None:
            repeat = self.a.repeat if workload in REPEATED else 1
        runs = {side.name: [] for side in sides}
        errors = {side.name: [] for side in sides}
        for rep in range(repeat):
            if rep and (time.monotonic() > self.deadline - 60 or
                        any(d > self.a.repeat_cut for d in self._last_durations.values())):
                self.notes.append("%s: %d of %d runs (a run took %.0f s > --repeat-cut %d, "
                                  "or the --budget is short)"
                                  % (workload, rep, repeat, max(self._last_durations.values()),
                                     self.a.repeat_cut))
                break
            self._last_durations = {}
            for side in sides:
                log("%s: %s side%s" % (workload, side.name,
                                       " (run %d of %d)" % (rep + 1, repeat)
                                       if repeat > 1 else ""))
                t0 = time.monotonic()
                v = None
                try:
                    v = fn(side)
                    runs[side.name].append(v)
                except SideFailed as e:
                    errors[side.name].append("failed: " + short(e) + self._died(side))
                except Exception as e:  # a harness or client bug: report, keep going
                    errors[side.name].append("failed: %s: %s%s" % (
                        type(e).__name__, short(e), self._died(side)))
                    self.notes.append("%s/%s traceback:\n%s" % (workload, side.name,
                                                               traceback.format_exc()))
                finally:
                    for h in list(self.live):
                        if h.side is side:
                            h.stop()
                            self.notes.extend("%s/%s: %s" % (workload, side.name, w)
                                              for w in h.warnings)
                            self.live.remove(h)
                    self.latency(self.a.latency_ms)
                self._last_durations[side.name] = time.monotonic() - t0
                log("%s: %s -> %s" % (workload, side.name,
                                      errors[side.name][-1] if v is None else
                                      json.dumps({k: round(x, 4) if isinstance(x, float) else x
                                                  for k, x in v.items()
                                                  if not isinstance(x, (dict, list, str))})))
        res = {}
        for side in sides:
            ok, bad = runs[side.name], errors[side.name]
            if ok:
                res[side.name] = merge_runs(ok)
                if bad:
                    res[side.name]["failed_runs"] = bad
                    self.notes.append("%s/%s: %d of %d runs failed: %s"
                                      % (workload, side.name, len(bad), len(ok) + len(bad),
                                         bad[0]))
            else:
                res[side.name] = bad[0] if bad else "failed: not run"
        self.details[workload] = {k: v for k, v in res.items()}
        return res

    def _died(self, side):
        """' (daemon exited N)' when a mount of @side has died under us."""
        for h in self.live:
            if h.side is side and h.proc.poll() is not None:
                rc = h.proc.returncode
                return " (daemon %s)" % ("killed by signal %d" % -rc if rc < 0
                                         else "exited %d" % rc)
        return ""

    def pick(self, res, key):
        out = {}
        for side, v in res.items():
            out[side] = v if isinstance(v, str) else v.get(key)
        return out

    def sides(self, user):
        return [JottaSide(self, user), RcloneSide(self, user)]

    # ---- workloads

    def w_find(self):
        folders, files = self.a.find_folders, self.a.find_files
        per = max(1, files // folders)
        user = "bench-find"
        log("find: seeding %d files in %d folders" % (per * folders, folders))
        entries = [{"path": "tree/d%04d/f%04d.txt" % (d, i), "content": "file %d %d\n" % (d, i)}
                   for d in range(folders) for i in range(per)]
        for i in range(0, len(entries), 5000):
            self.emu.seed(entries[i:i + 5000], user=user)
        want_lines = 1 + folders + len(entries)

        def one(side):
            m = side.mount("find")
            self.settle()
            target = os.path.join(m.path, "tree")
            out = {"flags": side.flags(False)}
            for phase in ("cold", "warm"):
                self.emu.reset_stats()
                c0 = cpu_seconds(m.pid)
                stdout, dt = checked(["find", target], timeout=self.left(self.a.step_timeout),
                                     what="find")
                out[phase + "_cpu_s"] = cpu_seconds(m.pid) - c0
                n = stdout.count(b"\n")
                if n != want_lines:
                    raise SideFailed("%s find listed %d entries, want %d"
                                     % (phase, n, want_lines))
                s = self.emu.stats()
                out[phase + "_s"] = dt
                out[phase + "_requests"] = self.total_requests(s)
                out[phase + "_by_kind"] = self.by_kind(s)
            return out

        res = self.run_sides("find", one, self.sides(user))
        lat = "latency %d ms" % self.a.latency_ms
        what = "%d files / %d folders" % (len(entries), folders)
        self.row("find", "cold find: seconds", "s", "lower", self.pick(res, "cold_s"),
                 "%s, %s" % (what, lat))
        self.row("find", "cold find: requests", "requests", "lower",
                 self.pick(res, "cold_requests"), self._kinds_note(res, "cold_by_kind"))
        self.row("find", "cold find: daemon CPU seconds", "s", "lower",
                 self.pick(res, "cold_cpu_s"), "utime + stime of the mount process")
        self.row("find", "warm find: seconds", "s", "lower", self.pick(res, "warm_s"),
                 "same mount, right after")
        self.row("find", "warm find: requests", "requests", "lower",
                 self.pick(res, "warm_requests"), self._kinds_note(res, "warm_by_kind"))

    def _kinds_note(self, res, key):
        parts = []
        for side, v in res.items():
            if isinstance(v, dict) and v.get(key) is not None:
                parts.append("%s %s" % (side, ",".join(
                    "%s=%s" % (k, x) for k, x in v[key].items() if k != "commands")
                    or "none"))
        return "; ".join(parts)

    def w_small(self):
        n, size = self.a.small_files, self.a.small_kib * 1024
        user = "bench-small"
        ndirs = max(1, min(20, n // 10))

        def one(side):
            src = os.path.join(self.work, "local", "small-" + side.name)
            expected = self.local_tree(src, side, n, "d%02d/f%05d.bin", ndirs,
                                       lambda: os.urandom(size))
            m = side.mount("small", write=True)
            return self.copy_in(m, side, src, user, expected)

        res = self.run_sides("small", one, self.sides(user))
        what = "%d x %d KiB in %d folders, cp -r" % (n, self.a.small_kib, ndirs)
        self.copy_rows("small", res, what)

    @staticmethod
    def local_tree(src, side, n, fmt, ndirs, content):
        """@n files under @src named fmt % (i % ndirs, i), each holding
        content(); returns {side/name: (size, md5)} for wait_on_server."""
        expected = {}
        for i in range(n):
            rel = fmt % (i % ndirs, i)
            p = os.path.join(src, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            data = content()
            with open(p, "wb") as f:
                f.write(data)
            expected[side.name + "/" + rel] = (len(data), hashlib.md5(data).hexdigest())
        return expected

    def copy_in(self, m, side, src, user, expected):
        """cp -r @src into a new folder of mount @m (each run its own, so that
        repeated runs create new files), then wait until @expected ({side/rel:
        ...}) is on the server there."""
        top = "%s-%d" % (side.name, self.next_id())
        expected = {top + "/" + k.split("/", 1)[1]: v for k, v in expected.items()}
        self.settle()
        self.emu.reset_stats()
        c0 = cpu_seconds(m.pid)
        t0 = time.monotonic()
        _, dt = checked(["cp", "-r", src, os.path.join(m.path, top)],
                        timeout=self.left(self.a.step_timeout), what="cp -r")
        t_srv = self.wait_on_server(user, expected, len(expected),
                                    timeout=self.left(self.a.upload_timeout))
        s = self.emu.stats()
        n = self.total_requests(s)
        return {"flags": side.flags(True), "cp_s": dt, "server_s": t_srv - t0,
                "after_cp_s": t_srv - t0 - dt, "requests": n,
                "requests_per_file": n / len(expected), "cpu_s": cpu_seconds(m.pid) - c0,
                "by_kind": self.by_kind(s)}

    def copy_rows(self, workload, res, what):
        self.row(workload, "cp -r returned: seconds", "s", "lower", self.pick(res, "cp_s"), what)
        self.row(workload, "all on server: seconds", "s", "lower", self.pick(res, "server_s"),
                 "from cp start; rclone uploads after its 5 s --vfs-write-back")
        self.row(workload, "requests per file until on server", "per file", "lower",
                 self.pick(res, "requests_per_file"), self._kinds_note(res, "by_kind"))
        self.row(workload, "daemon CPU seconds", "s", "lower", self.pick(res, "cpu_s"),
                 "utime + stime of the mount process, cp start to all on server")

    def w_empty(self):
        n = self.a.empty_files
        user = "bench-empty"
        ndirs = max(1, min(10, n // 10))

        def one(side):
            src = os.path.join(self.work, "local", "empty-" + side.name)
            expected = self.local_tree(src, side, n, "d%02d/e%05d", ndirs, lambda: b"")
            m = side.mount("empty", write=True)
            return self.copy_in(m, side, src, user, expected)

        res = self.run_sides("empty", one, self.sides(user))
        self.copy_rows("empty", res, "%d empty files in %d folders, cp -r" % (n, ndirs))

    def w_rm(self):
        n = self.a.rm_files
        user = "bench-rm"
        ndirs = max(1, min(20, n // 10))

        def live_under(prefix):
            """Paths under @prefix the service still has (not deleted, nor any folder above)."""
            gone, live = set(), 0
            for x in self.emu.tree(user):
                p = x["path"]
                if p != prefix and not p.startswith(prefix + "/"):
                    continue
                parent = p.rsplit("/", 1)[0] if "/" in p else ""
                if x["deleted"] or parent in gone:
                    gone.add(p)
                else:
                    live += 1
            return live

        def one(side):
            top = "rm-%s-%d" % (side.name, self.next_id())
            log("rm: seeding %d files for %s" % (n, side.name))
            self.emu.seed([{"path": "%s/d%02d/f%05d" % (top, i % ndirs, i),
                            "content": "file %d\n" % i} for i in range(n)], user=user)
            m = side.mount("rm", write=True)
            self.settle()
            self.emu.reset_stats()
            c0 = cpu_seconds(m.pid)
            t0 = time.monotonic()
            _, dt = checked(["rm", "-rf", os.path.join(m.path, top)],
                            timeout=self.left(self.a.step_timeout), what="rm -rf")
            deadline = time.monotonic() + self.left(self.a.upload_timeout)
            while True:
                left = live_under(top)
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise SideFailed("%d entries still on the service" % left)
                time.sleep(0.25)
            t_srv = time.monotonic()
            s = self.emu.stats()
            return {"flags": side.flags(True), "rm_s": dt, "server_s": t_srv - t0,
                    "requests": self.total_requests(s), "cpu_s": cpu_seconds(m.pid) - c0,
                    "by_kind": self.by_kind(s)}

        res = self.run_sides("rm", one, self.sides(user))
        what = "%d files in %d folders, seeded; cold mount" % (n, ndirs)
        self.row("rm", "rm -rf returned: seconds", "s", "lower", self.pick(res, "rm_s"), what)
        self.row("rm", "service matches: seconds", "s", "lower", self.pick(res, "server_s"),
                 "from rm start until no entry of the tree is left on the service")
        self.row("rm", "requests", "requests", "lower", self.pick(res, "requests"),
                 self._kinds_note(res, "by_kind"))
        self.row("rm", "daemon CPU seconds", "s", "lower", self.pick(res, "cpu_s"),
                 "utime + stime of the mount process")

    def w_big(self):
        user = "bench-big"
        path, size, md5 = self.big_local()
        self.emu.seed([], user=user)

        def one(side):
            refs = {}
            if side.name == "jottafs":
                # The references, in every run (the sides take turns: j, r, j, ...):
                # the raw API upload of the same bytes through the same proxy and
                # TLS, and dd conv=fsync of as many bytes on the cache disk.
                self.warm_memory(2 * size + GiB)
                raw_s, raw_cpu, raw_emu_cpu = self.raw_upload(
                    user, "raw/big-%d.bin" % self.next_id(), path, size, md5)
                refs = {"raw_s": raw_s, "raw_MBps": size / raw_s / 1e6,
                        "raw_curl_cpu_s": raw_cpu, "raw_emu_cpu_s": raw_emu_cpu,
                        "dd_fsync_s": self.dd_fsync(size)}
            m = side.mount("big", write=True)
            self.settle()
            # The previous run's cache file (rclone does not fsync its own) must
            # not be written back during this one (warm_memory syncs); the
            # cache file, the mount's pages and the emulator's copy are 3 GiB of
            # new page cache.
            self.warm_memory(3 * size + GiB)
            self.emu.reset_stats()
            c0 = cpu_seconds(m.pid)
            t0 = time.monotonic()
            sp = "big-%s-%d.bin" % (side.name, self.next_id())
            _, dt = checked(["cp", path, os.path.join(m.path, sp)],
                            timeout=self.left(self.a.step_timeout), what="cp")
            # When the client asks for the upload, and when the data has arrived
            # (the emulator counts upload_bytes once the POST body ends); then the
            # tree walk confirms it.
            e0 = cpu_seconds(self.emu.proc.pid)
            t_alloc = e_alloc = None
            deadline = time.monotonic() + self.left(self.a.upload_timeout)
            while time.monotonic() < deadline:
                s = self.emu.stats()
                if t_alloc is None and s["requests"]["allocate"]:
                    t_alloc, e_alloc = time.monotonic(), cpu_seconds(self.emu.proc.pid)
                if s["upload_bytes"] >= size or s["instant_uploads"]:
                    break
                time.sleep(0.05)
            t_srv = self.wait_on_server(user, {sp: (size, md5)}, 1,
                                        timeout=self.left(self.a.upload_timeout), poll=0.1)
            s = self.emu.stats()
            cpu = cpu_seconds(m.pid) - c0
            out = {"flags": side.flags(True), "cp_s": dt, "close_to_server_s": t_srv - t0 - dt,
                   "total_s": t_srv - t0, "requests": self.total_requests(s),
                   "cpu_s": cpu, "cpu_s_per_GiB": cpu / (size / GiB),
                   "by_kind": self.by_kind(s)}
            if t_alloc is not None:
                out.update({"close_to_allocate_s": t_alloc - t0 - dt,
                            "upload_s": t_srv - t_alloc,
                            "upload_MBps": size / (t_srv - t_alloc) / 1e6,
                            "upload_emu_cpu_s": cpu_seconds(self.emu.proc.pid) - e_alloc})
            out["emu_cpu_s"] = cpu_seconds(self.emu.proc.pid) - e0
            out.update(refs)
            # the ratios of each run (its own references, same load): their
            # median is steadier than a ratio of medians on a shared machine
            if refs:
                out["cp_vs_dd"] = dt / refs["dd_fsync_s"]
                if "upload_MBps" in out:
                    out["upload_vs_raw"] = out["upload_MBps"] / refs["raw_MBps"]
            return out

        res = self.run_sides("big", one, self.sides(user))
        j = res.get("jottafs") if isinstance(res.get("jottafs"), dict) else {}

        def ref(key):
            v = j.get(key)
            return v if isinstance(v, (int, float)) else "not measured"

        def ratio(num, den, fmt):
            if isinstance(num, (int, float)) and isinstance(den, (int, float)) and den:
                return fmt % (num / den)
            return ""
        mib = "%d MiB" % self.a.big_mib
        self.row("big", "cp returned (close): seconds", "s", "lower", self.pick(res, "cp_s"),
                 "one %s file; reference: dd if=/dev/zero bs=1M conv=fsync of as many bytes "
                 "on the cache disk, each run%s" % (
                     mib, ratio(j.get("cp_vs_dd"), 1,
                                "; jottafs cp / dd %.2fx, median of the runs' ratios "
                                "(issue 9: <= 1.3x)")),
                 ref=("dd conv=fsync", ref("dd_fsync_s")))
        self.row("big", "close() -> allocate: seconds", "s", "lower",
                 self.pick(res, "close_to_allocate_s"),
                 "the write-back delay and the commit's leftovers; rclone waits 5 s "
                 "(--vfs-write-back) and hashes")
        self.row("big", "upload (allocate -> server-confirmed): MB/s", "MB/s", "higher",
                 self.pick(res, "upload_MBps"),
                 "reference: the raw API upload (allocate + data POST with curl, same "
                 "CONNECT proxy and TLS), each run%s" % ratio(
                     j.get("upload_vs_raw"), 1,
                     "; jottafs / raw %.2fx, median of the runs' ratios (issue 9: >= 0.9x)"),
                 ref=("raw curl", ref("raw_MBps")))
        self.row("big", "emulator CPU seconds during the upload", "s", "lower",
                 self.pick(res, "upload_emu_cpu_s"),
                 "allocate -> confirmed; the emulator is Python on the same 2 cores",
                 ref=("raw curl", ref("raw_emu_cpu_s")))
        self.row("big", "close() -> server-confirmed: seconds", "s", "lower",
                 self.pick(res, "close_to_server_s"))
        self.row("big", "cp start -> server-confirmed: seconds", "s", "lower",
                 self.pick(res, "total_s"), "rclone waits 5 s (--vfs-write-back) first")
        self.row("big", "daemon CPU seconds per GiB written", "s", "lower",
                 self.pick(res, "cpu_s_per_GiB"), "cp start to server-confirmed",
                 ref=("curl (upload only)", ref("raw_curl_cpu_s")))

    def w_read(self):
        user = "bench-read"
        path, size, md5 = self.big_local()
        sp = "read/big.bin"
        log("read: uploading the %d MiB file" % self.a.big_mib)
        self.latency(0)
        self.raw_upload(user, sp, path, size, md5)
        self.latency(self.a.latency_ms)
        with open(path, "rb") as f:
            head = f.read(65536)

        def one(side):
            out = {"flags": side.flags(False), "head_runs": []}
            # How much a client fetches for 64 KiB depends on timing (socket
            # buffers, kernel read-ahead): median of a few cold mounts.
            for _ in range(self.a.head_repeat):
                relay = helpers.CountingRelay(self.emu.port)
                self.relays.append(relay)
                try:
                    m = side.mount("read", relay=relay)
                    self.settle()
                    self.emu.reset_stats()
                    relay.reset()
                    got, dt = checked(["head", "-c", "65536", os.path.join(m.path, sp)],
                                      timeout=self.left(self.a.step_timeout), what="head")
                    if got != head:
                        raise SideFailed("head -c 65536 returned %d wrong bytes" % len(got))
                    # read-ahead and aborted transfers finish: the relay quiet for 1 s
                    wait_steady(lambda: relay.counts()["down"], "the downloads after head",
                                quiet=1.0, timeout=self.left(self.a.step_timeout))
                    s = self.emu.stats()
                    out["head_runs"].append({
                        "seconds": dt, "wire_bytes": relay.counts()["down"],
                        "emu_download_bytes": s["download_bytes"],
                        "requests": self.total_requests(s), "by_kind": self.by_kind(s)})
                    m.stop()
                finally:
                    relay.close()
            runs = out["head_runs"]
            out["head_s"] = statistics.median(r["seconds"] for r in runs)
            out["head_wire_bytes"] = statistics.median(r["wire_bytes"] for r in runs)
            # Whole file, latency 0, fresh mount, no relay.
            self.latency(0)
            m = side.mount("seq")
            self.settle()
            self.emu.reset_stats()
            self.warm_memory(2 * size + GiB)
            c0 = cpu_seconds(m.pid)
            rc, o, e, dt = run_cmd([sys.executable, "-c", CMP_SCRIPT, os.path.join(m.path, sp),
                                    path], timeout=self.left(self.a.step_timeout))
            if rc != 0:
                raise SideFailed("sequential read: " + short((o + e).decode(errors="replace")))
            s = self.emu.stats()
            cpu = cpu_seconds(m.pid) - c0
            out.update({"seq_s": dt, "seq_MBps": size / dt / 1e6,
                        "seq_cpu_s_per_GiB": cpu / (size / GiB),
                        "seq_download_bytes": s["download_bytes"],
                        "seq_by_kind": self.by_kind(s)})
            return out

        res = self.run_sides("read", one, self.sides(user))
        # The same bytes with curl, single stream, same proxy and TLS, latency 0,
        # as many times as the sides ran.
        self.latency(0)
        curl = []
        for _ in range(self.a.repeat if "read" in REPEATED else 1):
            try:
                self.warm_memory(2 * size + GiB)
                curl.append(self.curl_read(user, sp, size))
            except SideFailed as e:
                curl_err = "failed: " + short(e)
        self.latency(self.a.latency_ms)
        if curl:
            curl_mbps = Stat([c[1] for c in curl])
            curl_cpu = Stat([c[2] / (size / GiB) for c in curl])
        else:
            curl_mbps = curl_cpu = curl_err
        self.details["read"]["curl"] = [{"seconds": c[0], "MBps": c[1], "cpu_s": c[2]}
                                        for c in curl]

        def runs(key):
            return "; ".join("%s %s" % (k, " ".join(str(round(r[key], 3)) for r in
                                                    v["head_runs"]))
                             for k, v in res.items() if isinstance(v, dict))
        self.row("read", "head -c 64KiB: bytes sent by the emulator", "bytes", "lower",
                 self.pick(res, "head_wire_bytes"),
                 "median of %d cold mounts, relay-counted (rclone's include TLS): %s; "
                 "emulator download_bytes (completed bodies only): %s"
                 % (self.a.head_repeat, runs("wire_bytes"), runs("emu_download_bytes")))
        self.row("read", "head -c 64KiB: seconds", "s", "lower", self.pick(res, "head_s"),
                 "median, latency %d ms: %s" % (self.a.latency_ms, runs("seconds")))
        j = res.get("jottafs")
        vs_curl = ("; jottafs/curl %.2fx" % (float(j["seq_MBps"]) / float(curl_mbps))
                   if isinstance(j, dict) and isinstance(curl_mbps, float) else "")
        self.row("read", "cold sequential read %d MiB: MB/s" % self.a.big_mib, "MB/s",
                 "higher", self.pick(res, "seq_MBps"),
                 "latency 0, cold mount, read + compare in 1 MiB blocks; both through the "
                 "CONNECT proxy + TLS; dirty pages synced and fresh memory touched before "
                 "each run (warm_memory: this VM's free page reporting); reference: curl of the same bytes, one stream, same "
                 "proxy and TLS" + vs_curl, ref=("curl", curl_mbps))
        self.row("read", "daemon CPU seconds per GiB read", "s", "lower",
                 self.pick(res, "seq_cpu_s_per_GiB"),
                 "the sequential read above; reference: curl's own CPU per GiB",
                 ref=("curl", curl_cpu))

    # ---- real tools (issue 9): tar, rsync, git

    def tree_local(self):
        """The local copy of /usr/include (regular files and folders only:
        Jottacloud has no symlinks; --tree-files N takes the first N files in
        sorted order), and a tarball of it, made once:
        (src dir, tarball, {rel: (size, md5)}, folders, bytes)."""
        if getattr(self, "_tree", None) is None:
            src = os.path.join(self.work, "local", "include")
            files = []
            for root, dirs, names in os.walk(self.a.tree_src):
                dirs.sort()
                for nm in sorted(names):
                    p = os.path.join(root, nm)
                    if os.path.isfile(p) and not os.path.islink(p):
                        files.append(os.path.relpath(p, self.a.tree_src))
            # The service compares names without case (xt_mark.h and xt_MARK.h
            # are one name there): keep the first of each such set.
            seen, kept, self._tree_skipped = set(), [], []
            for rel in files:
                if rel.lower() in seen:
                    self._tree_skipped.append(rel)
                else:
                    seen.add(rel.lower())
                    kept.append(rel)
            files = kept
            if self.a.tree_files:
                files = files[:self.a.tree_files]
            if not files:
                raise SideFailed("no regular files under " + self.a.tree_src)
            expected, total, dirs = {}, 0, set()
            for rel in files:
                dst = os.path.join(src, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(os.path.join(self.a.tree_src, rel), dst)
                with open(dst, "rb") as f:
                    data = f.read()
                expected[rel] = (len(data), hashlib.md5(data).hexdigest())
                total += len(data)
                d = os.path.dirname(rel)
                while d:
                    dirs.add(d)
                    d = os.path.dirname(d)
            tarball = os.path.join(self.work, "local", "include.tar")
            checked(["tar", "-cf", tarball, "-C", src, "."], timeout=300, what="tar -c")
            self._tree = (src, tarball, expected, len(dirs), total)
            log("tree: %d files, %d folders, %.1f MiB from %s (%d names left out: "
                "same name but for case)" % (len(files), len(dirs), total / MiB,
                                             self.a.tree_src, len(self._tree_skipped)))
        return self._tree

    def tool_in(self, workload, side, user, cmd_fn, ok_codes=(0,)):
        """Fresh mount (write mode), run cmd_fn(dest) into a new folder, wait
        until the service matches the local tree exactly."""
        src, tarball, files, ndirs, total = self.tree_local()
        top = "%s-%s-%d" % (workload, side.name, self.next_id())
        expected = {top + "/" + rel: v for rel, v in files.items()}
        m = side.mount(workload, write=True)
        dest = os.path.join(m.path, top)
        if workload == "tar":
            os.mkdir(dest)
        self.settle()
        self.emu.reset_stats()
        c0 = cpu_seconds(m.pid)
        t0 = time.monotonic()
        rc, out, err, dt = run_cmd(cmd_fn(src, tarball, dest),
                                   timeout=self.left(self.a.step_timeout))
        if rc not in ok_codes:
            raise SideFailed("%s exited %d: %s" % (workload, rc,
                                                   short(err.decode(errors="replace")[-300:])))
        t_srv = self.wait_on_server(user, expected, len(expected),
                                    timeout=self.left(self.a.upload_timeout), prefix=top)
        s = self.emu.stats()
        n = self.total_requests(s)
        r = {"flags": side.flags(True), "cmd_s": dt, "server_s": t_srv - t0,
             "requests": n, "requests_per_file": n / len(expected),
             "cpu_s": cpu_seconds(m.pid) - c0, "by_kind": self.by_kind(s)}
        if rc:
            r["exit"] = "%d: %s" % (rc, short(err.decode(errors="replace")[-200:]))
        return r

    def tool_rows(self, workload, res, cmd):
        src, tarball, files, ndirs, total = self.tree_local()
        what = "%s: %d files, %d folders, %.0f MiB (%s less %d names equal but for case)" % (
            cmd, len(files), ndirs, total / MiB, self.a.tree_src, len(self._tree_skipped))
        exits = "; ".join("%s exited %s" % (k, v["exit"]) for k, v in res.items()
                          if isinstance(v, dict) and v.get("exit"))
        self.row(workload, "%s returned: seconds" % cmd, "s", "lower",
                 self.pick(res, "cmd_s"), what + ("; " + exits if exits else ""))
        self.row(workload, "service matches: seconds", "s", "lower", self.pick(res, "server_s"),
                 "from start until every file is on the service with its size and MD5 "
                 "and no other file is left; rclone uploads after its 5 s --vfs-write-back")
        self.row(workload, "requests per file until the service matches", "per file", "lower",
                 self.pick(res, "requests_per_file"), self._kinds_note(res, "by_kind"))
        self.row(workload, "daemon CPU seconds", "s", "lower", self.pick(res, "cpu_s"),
                 "utime + stime of the mount process, start to the service matching")

    def w_tar(self):
        user = "bench-tar"
        self.emu.seed([], user=user)
        # As root tar restores owners: --no-same-owner/--no-same-permissions
        # keep it to what a user's untar asks of a filesystem.
        res = self.run_sides("tar", lambda side: self.tool_in(
            "tar", side, user, lambda src, tarball, dest: [
                "tar", "-xf", tarball, "-C", dest, "--no-same-owner"]),
            self.sides(user))
        self.tool_rows("tar", res, "tar -xf")

    def w_rsync(self):
        user = "bench-rsync"
        self.emu.seed([], user=user)
        # Exit 23 (some attributes not transferred, e.g. owners the service
        # cannot keep) still copies every file: the service check decides.
        res = self.run_sides("rsync", lambda side: self.tool_in(
            "rsync", side, user, lambda src, tarball, dest: [
                "rsync", "-a", src + "/", dest + "/"], ok_codes=(0, 23)),
            self.sides(user))
        self.tool_rows("rsync", res, "rsync -a")

    def w_git(self):
        n = self.a.git_files
        user = "bench-git"
        self.emu.seed([], user=user)
        genv = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=self.work,
                    GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
                    GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
        git = ["git", "-c", "safe.directory=*", "-c", "gc.auto=0"]

        def one(side):
            top = "git-%s-%d" % (side.name, self.next_id())
            src = os.path.join(self.work, "local", top)
            expected = self.local_tree(src, side, n, "d%02d/f%05d.txt", max(1, n // 100),
                                       lambda: os.urandom(60).hex().encode() + b"\n")
            expected = {top + "/" + k.split("/", 1)[1]: v for k, v in expected.items()}
            m = side.mount("git", write=True)
            repo = os.path.join(m.path, top)
            checked(["cp", "-r", src, repo], timeout=self.left(self.a.step_timeout),
                    what="cp -r")
            checked(git + ["init", "-q", repo], timeout=self.left(120), what="git init",
                    env=genv)
            # The work tree on the service first: git add is measured alone.
            self.wait_on_server(user, expected, len(expected),
                                timeout=self.left(self.a.upload_timeout))
            self.settle(quiet=6 if side.name == "rclone" else 1, limit=60)
            self.emu.reset_stats()
            c0 = cpu_seconds(m.pid)
            _, dt = checked(git + ["-C", repo, "add", "-A"],
                            timeout=self.left(self.a.step_timeout), what="git add", env=genv)
            t1 = time.monotonic()
            # Its uploads (the objects, the index) until the emulator is quiet
            # for longer than rclone's 5 s write-back.
            self.settle(quiet=6, limit=self.left(self.a.upload_timeout))
            s = self.emu.stats()
            nreq = self.total_requests(s)
            return {"flags": side.flags(True), "add_s": dt,
                    "quiet_after_s": time.monotonic() - t1 - 6, "requests": nreq,
                    "requests_per_file": nreq / n, "cpu_s": cpu_seconds(m.pid) - c0,
                    "by_kind": self.by_kind(s)}

        res = self.run_sides("git", one, self.sides(user))
        self.row("git", "git add -A returned: seconds", "s", "lower", self.pick(res, "add_s"),
                 "%d files of 121 bytes in a fresh repo in the mount, work tree already on "
                 "the service" % n)
        self.row("git", "requests per file (git add and its uploads)", "per file", "lower",
                 self.pick(res, "requests_per_file"),
                 "until the emulator is quiet for 6 s; " + self._kinds_note(res, "by_kind"))
        self.row("git", "daemon CPU seconds", "s", "lower", self.pick(res, "cpu_s"),
                 "utime + stime of the mount process")

    # ---- reads (issue 10): curl reference, thumbnail probe, fio

    def curl_read(self, user, server_path, size):
        """One stream of the same bytes with curl, through the same CONNECT proxy
        and TLS: (seconds, MB/s, curl's CPU seconds)."""
        tok = self.emu.tokens(user)["access_token"]
        url = "https://jfs.jottacloud.com/jfs/%s/Jotta/Archive/%s?mode=bin" % (
            urllib.parse.quote(self.emu.username(user)), urllib.parse.quote(server_path))
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out, dt = checked(["curl", "-sS", "--fail", "-o", "/dev/null", "--proxy", self.emu.url,
                           "--cacert", self.emu.ca_path, "-H", "Authorization: Bearer " + tok,
                           "-w", "%{size_download}", url],
                          timeout=self.left(self.a.step_timeout), what="curl")
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if int(out.strip() or 0) != size:
            raise SideFailed("curl fetched %s bytes, want %d" % (out.strip(), size))
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return dt, size / dt / 1e6, cpu

    def w_thumb(self):
        n, size = self.a.thumb_files, self.a.thumb_mib * MiB
        user = "bench-thumb"
        log("thumb: seeding %d files of %d MiB (one content, so one blob)" % (n, self.a.thumb_mib))
        for i in range(n):
            self.emu.seed([{"path": "thumb/f%04d.jpg" % i, "size": size, "fill": "random"}],
                          user=user, seed=0)
        head = random.Random(0).randbytes(min(size, MiB))[:65536]

        def one(side):
            relay = helpers.CountingRelay(self.emu.port)
            self.relays.append(relay)
            try:
                m = side.mount("thumb", relay=relay)
                checked(["ls", "-l", os.path.join(m.path, "thumb")], timeout=self.left(120),
                        what="ls")
                self.settle()
                self.emu.reset_stats()
                relay.reset()
                c0 = cpu_seconds(m.pid)
                t0 = time.monotonic()
                for i in range(n):
                    got, _ = checked(["head", "-c", "65536",
                                      os.path.join(m.path, "thumb", "f%04d.jpg" % i)],
                                     timeout=self.left(self.a.step_timeout), what="head")
                    if got != head:
                        raise SideFailed("head -c 65536 of file %d: %d wrong bytes"
                                         % (i, len(got)))
                dt = time.monotonic() - t0
                wait_steady(lambda: relay.counts()["down"], "the downloads after head",
                            quiet=1.0, timeout=self.left(self.a.step_timeout))
                s = self.emu.stats()
                down = relay.counts()["down"]
                return {"flags": side.flags(False), "seconds": dt, "wire_bytes": down,
                        "wire_bytes_per_file": down / n,
                        "downloads_per_file": s["requests"]["download"] / n,
                        "requests_per_file": self.total_requests(s) / n,
                        "cpu_s": cpu_seconds(m.pid) - c0, "by_kind": self.by_kind(s)}
            finally:
                relay.close()

        res = self.run_sides("thumb", one, self.sides(user))
        what = "head -c 65536 of each of %d files of %d MiB, cold mount, latency %d ms" % (
            n, self.a.thumb_mib, self.a.latency_ms)
        self.row("thumb", "bytes on the wire per file", "bytes", "lower",
                 self.pick(res, "wire_bytes_per_file"),
                 what + "; relay-counted until quiet for 1 s (TLS records included)")
        self.row("thumb", "download requests per file", "per file", "lower",
                 self.pick(res, "downloads_per_file"), self._kinds_note(res, "by_kind"))
        self.row("thumb", "all %d probes: seconds" % n, "s", "lower", self.pick(res, "seconds"),
                 "one head after the other")
        self.row("thumb", "daemon CPU seconds", "s", "lower", self.pick(res, "cpu_s"),
                 "utime + stime of the mount process")

    def w_fio(self):
        mib = self.a.fio_mib
        user = "bench-fio"
        log("fio: seeding a %d MiB file" % mib)
        self.emu.seed([{"path": "fio/data.bin", "size": mib * MiB, "fill": "random"}],
                      user=user, seed=1)
        if shutil.which("fio") is None:
            raise SideFailed("fio is not installed (make deps)")

        def fio(path, direct):
            args = ["fio", "--name=randread", "--filename=" + path, "--rw=randread",
                    "--bs=4k", "--ioengine=psync", "--size=%dM" % mib, "--readonly",
                    "--time_based", "--runtime=%d" % self.a.fio_runtime,
                    "--direct=%d" % direct, "--output-format=json"]
            out, _ = checked(args, timeout=self.left(self.a.fio_runtime + 120),
                             what="fio" + (" --direct=1" if direct else ""))
            j = json.loads(out[out.index(b"{"):])
            return j["jobs"][0]["read"]

        def one(side):
            # rclone keeps content only with --vfs-cache-mode full (write mode).
            m = side.mount("fio", write=True)
            path = os.path.join(m.path, "fio", "data.bin")
            self.latency(0)
            checked(["cat", path], timeout=self.left(self.a.step_timeout), what="cat")
            self.settle(quiet=1.0, limit=60)
            self.latency(self.a.latency_ms)
            out = {"flags": side.flags(True)}
            for mode, direct in (("buffered", 0), ("direct", 1)):
                self.emu.reset_stats()
                c0 = cpu_seconds(m.pid)
                io0, cs0 = proc_io(m.pid), ctx_switches(m.pid)
                try:
                    r = fio(path, direct)
                except SideFailed as e:
                    out[mode + "_error"] = short(e)
                    continue
                io1, cs1 = proc_io(m.pid), ctx_switches(m.pid)
                out[mode + "_ctx_switches_per_io"] = (cs1 - cs0) / max(1, r["total_ios"])
                cpu = cpu_seconds(m.pid) - c0
                s = self.emu.stats()
                out[mode + "_iops"] = r["iops"]
                out[mode + "_lat_us"] = r["clat_ns"]["mean"] / 1000
                out[mode + "_cpu_s_per_10k"] = cpu / max(1, r["total_ios"]) * 1e4
                out[mode + "_daemon_read_syscalls_per_io"] = (
                    (io1["syscr"] - io0["syscr"]) / max(1, r["total_ios"]))
                out[mode + "_downloads"] = s["requests"]["download"]
                out[mode + "_requests"] = self.total_requests(s)
            if "buffered_iops" not in out and "direct_iops" not in out:
                raise SideFailed(out.get("buffered_error", "fio failed"))
            return out

        res = self.run_sides("fio", one, self.sides(user))

        what = ("fio randread bs=4k psync, %d MiB file read once with cat first (fully "
                "cached), %d s" % (mib, self.a.fio_runtime))
        for mode, label in (("buffered", "buffered"), ("direct", "O_DIRECT")):
            self.row("fio", "4 KiB random reads, %s: IOPS" % label, "IOPS", "higher",
                     self.side_val(res, mode, "iops"),
                     what + "; emulator requests during fio (downloads): "
                     + self._vals(res, mode + "_requests") + " ("
                     + self._vals(res, mode + "_downloads") + ")")
            self.row("fio", "%s: daemon CPU seconds per 10k reads" % label, "s", "lower",
                     self.side_val(res, mode, "cpu_s_per_10k"),
                     "daemon read()-family syscalls per I/O (/proc/PID/io syscr): "
                     + self._vals(res, mode + "_daemon_read_syscalls_per_io")
                     + "; daemon context switches per I/O: "
                     + self._vals(res, mode + "_ctx_switches_per_io"))

    @staticmethod
    def side_val(res, mode, key):
        out = {}
        for side, v in res.items():
            if isinstance(v, str):
                out[side] = v
            elif mode + "_" + key in v:
                out[side] = v[mode + "_" + key]
            else:
                out[side] = "failed: " + v.get(mode + "_error", "not run")
        return out

    @staticmethod
    def _vals(res, key):
        return ", ".join("%s %s" % (k, round(v[key], 2) if isinstance(v[key], float) else v[key])
                         for k, v in res.items() if isinstance(v, dict) and key in v) or "-"

    def w_rss(self):
        n = self.a.rss_entries
        user = "bench-rss"
        log("rss: seeding %d entries in one folder" % n)
        t0 = time.monotonic()
        for i in range(0, n, 10000):
            self.emu.seed([{"path": "big/file-%07d.txt" % j, "content": ""}
                           for j in range(i, min(n, i + 10000))], user=user)
        log("rss: seeded in %.1f s" % (time.monotonic() - t0))

        def one(side):
            m = side.mount("rss")
            self.settle()
            before = proc_status(m.pid)
            self.emu.reset_stats()
            stdout, dt = checked(["ls", "-f", os.path.join(m.path, "big")],
                                 timeout=self.left(self.a.step_timeout), what="ls -f")
            names = stdout.count(b"\n") - 2  # . and ..
            if names != n:
                raise SideFailed("ls -f listed %d entries, want %d" % (names, n))
            after = proc_status(m.pid)
            s = self.emu.stats()
            return {"flags": side.flags(False), "rss_before": before["VmRSS"],
                    "rss_after": after["VmRSS"], "hwm_after": after["VmHWM"],
                    "rss_after_MiB": after["VmRSS"] / MiB, "hwm_after_MiB": after["VmHWM"] / MiB,
                    "ls_s": dt, "requests": self.total_requests(s),
                    "by_kind": self.by_kind(s)}

        res = self.run_sides("rss", one, self.sides(user))
        self.row("rss", "daemon VmRSS after ls -f %d: MiB" % n, "MiB", "lower",
                 self.pick(res, "rss_after_MiB"), "peak VmHWM: " + ", ".join(
                     "%s %.1f MiB" % (k, v["hwm_after_MiB"]) for k, v in res.items()
                     if isinstance(v, dict)))
        self.row("rss", "ls -f %d: seconds" % n, "s", "lower", self.pick(res, "ls_s"),
                 "latency %d ms" % self.a.latency_ms)

    # ---- driver

    def run(self):
        os.makedirs(os.path.join(self.work, "mnt"), exist_ok=True)
        log("scratch in %s, emulator data in %s" % (self.work, self.a.emu_dir))
        self.emu = Emulator(data_dir=self.a.emu_dir,
                            knobs={"dedup": "off", "latency_ms": self.a.latency_ms})
        try:
            for name in WORKLOADS:
                if self.a.only and name not in self.a.only:
                    continue
                if time.monotonic() > self.deadline:
                    self.notes.append("workload %s not run: --budget of %d s used up"
                                      % (name, self.a.budget))
                    continue
                t0 = time.monotonic()
                log("== workload %s" % name)
                try:
                    getattr(self, "w_" + name)()
                except (SideFailed, AssertionError, OSError, ValueError) as e:
                    self.notes.append("workload %s could not run: %s" % (name, short(e)))
                    log("workload %s could not run: %s" % (name, short(e)))
                self.details.setdefault(name, {})["wall_s"] = time.monotonic() - t0
                self.latency(self.a.latency_ms)
        finally:
            self.cleanup()

    def cleanup(self):
        for h in self.live:
            try:
                h.stop()
            except Exception as e:  # clean-up must go on
                self.notes.append("clean-up: " + short(e))
        self.live = []
        for r in self.relays:
            r.close()
        if self.emu:
            rc = self.emu.stop()
            err = self.emu.stderr()
            if rc != 0 or "Traceback" in err:
                self.notes.append("emulator exited %s; stderr tail: %s" % (rc, err[-1500:]))
            self.emu.close()


# A child process, so that a hung mount can be killed: read @1 in 1 MiB blocks
# and compare with @2.
WARM_SCRIPT = r"""
import mmap, sys
m = mmap.mmap(-1, int(sys.argv[1]))
for i in range(0, len(m), 4096):
    m[i] = 1
"""

CMP_SCRIPT = r"""
import sys
a = open(sys.argv[1], "rb", buffering=0)
b = open(sys.argv[2], "rb", buffering=0)
buf = bytearray(1 << 20)
mv = memoryview(buf)
off = 0
while True:
    n = a.readinto(buf)
    want = b.read(1 << 20)
    if n != len(want) or mv[:n] != want:
        sys.exit("differs at or after byte %d (got %d bytes, want %d)" % (off, n, len(want)))
    if n == 0:
        break
    off += n
"""


# ------------------------------------------------------------------ output

def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "bytes":
        return "%d (%.2f MiB)" % (v, v / MiB) if v >= MiB else "%d (%.0f KiB)" % (v, v / 1024)
    if unit == "requests":
        return "%d" % v
    if unit == "per file":
        return "%.2f" % v
    if unit == "MB/s":
        return "%.0f MB/s" % v
    if unit == "IOPS":
        return "%.0f IOPS" % v
    if unit == "MiB":
        return "%.1f MiB" % v
    return "%.3f s" % v if v < 10 else "%.1f s" % v


def cell(r, side):
    """A table cell: the figure (median of the runs), the best run in brackets."""
    if r.get(side) is None:
        e = r.get(side + "_error") or "-"
        return e if len(e) <= 38 else e[:35] + "..."
    c = fmt(r[side], r["unit"])
    if r.get(side + "_best") is not None:
        c += " (%s %s)" % ("min" if r["better"] == "lower" else "max",
                           fmt(r[side + "_best"], r["unit"]).split(" (")[0])
    return c


def table(rows):
    head = ("workload", "metric", "jottafs", "rclone", "ratio", "reference")
    lines = []
    for r in rows:
        ratio = "-" if r["ratio"] is None else "%.2fx" % r["ratio"]
        ref = ""
        if r.get("ref_what"):
            ref = "%s %s" % (r["ref_what"], cell(r, "ref"))
        lines.append((r["workload"], r["metric"], cell(r, "jottafs"), cell(r, "rclone"),
                      "%s (%s)" % (ratio, r["ratio_formula"]), ref))
    w = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    out = ["  ".join(h.ljust(w[i]) for i, h in enumerate(head)).rstrip(),
           "  ".join("-" * w[i] for i in range(len(head)))]
    for ln in lines:
        out.append("  ".join(c.ljust(w[i]) for i, c in enumerate(ln)).rstrip())
    return "\n".join(out)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--quick", action="store_true",
                    help="10x smaller sizes (smoke run): 500 files/25 folders, 200 small "
                         "files, 100 empty, rm of 200, 100 MiB, 10k entries, 300 tree "
                         "files, 200 git files, 10 x 8 MiB probes, 64 MiB fio for 3 s; "
                         "one run each")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only these workloads (repeat or comma-separate): "
                         + ", ".join(WORKLOADS))
    ap.add_argument("--find-files", type=int)
    ap.add_argument("--find-folders", type=int)
    ap.add_argument("--small-files", type=int)
    ap.add_argument("--small-kib", type=int, default=4)
    ap.add_argument("--empty-files", type=int)
    ap.add_argument("--rm-files", type=int)
    ap.add_argument("--big-mib", type=int, help="size of the big file (big and read)")
    ap.add_argument("--rss-entries", type=int)
    ap.add_argument("--tree-src", default="/usr/include",
                    help="the tree that tar and rsync copy in (regular files only)")
    ap.add_argument("--tree-files", type=int,
                    help="first N files of --tree-src (0: all; --quick: 300)")
    ap.add_argument("--git-files", type=int)
    ap.add_argument("--thumb-files", type=int)
    ap.add_argument("--thumb-mib", type=int)
    ap.add_argument("--fio-mib", type=int)
    ap.add_argument("--fio-runtime", type=int)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of the repeated workloads (%s): median and min shown; "
                         "default 3 (--quick: 1)" % ", ".join(REPEATED))
    ap.add_argument("--repeat-cut", type=int, default=150,
                    help="no further runs of a workload once one side's run took longer "
                         "than this (s)")
    ap.add_argument("--head-repeat", type=int, default=1,
                    help="cold mounts for the head -c 64KiB figure within one run (median)")
    ap.add_argument("--budget", type=int, default=3600,
                    help="wall-clock budget (s): timeouts are cut to it and workloads "
                         "left when it is used up are skipped")
    ap.add_argument("--step-timeout", type=int, default=600,
                    help="timeout of each measured command (s)")
    ap.add_argument("--upload-timeout", type=int, default=240,
                    help="how long to wait for uploads to reach the server (s)")
    ap.add_argument("--jottafs-plain-http", action="store_true",
                    help="jottafs talks plain HTTP to the emulator (rclone always goes "
                         "through the CONNECT proxy + TLS): unfair, for profiling only")
    ap.add_argument("--jottafs", default=None, help="jottafs binary (default $JOTTAFS_BIN)")
    ap.add_argument("--json", default=None, help="where the JSON goes "
                                                 "(default: next to the jottafs binary)")
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a new "
                                                    "temporary directory, removed after)")
    ap.add_argument("--emu-dir", default=None,
                    help="emulator data (default: a new directory in /dev/shm, removed "
                         "after; on a disk the emulator's own writeback throttling shows "
                         "up in the upload figures)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch and emulator directories")
    a = ap.parse_args(argv)
    q = 10 if a.quick else 1
    defaults = {"find_files": 5000 // q, "find_folders": 250 // q, "small_files": 2000 // q,
                "big_mib": 1024 // q if q == 1 else 100, "rss_entries": 100000 // q,
                "empty_files": 1000 // q, "rm_files": 2000 // q,
                "tree_files": 300 if a.quick else 0, "git_files": 2000 // q,
                "thumb_files": 100 // q, "thumb_mib": 8 if a.quick else 50,
                "fio_mib": 64 if a.quick else 256, "fio_runtime": 3 if a.quick else 10,
                "repeat": 1 if a.quick else 3}
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    only = set()
    for o in a.only:
        only.update(x.strip() for x in o.split(",") if x.strip())
    bad = only - set(WORKLOADS)
    if bad:
        ap.error("unknown workload(s) %s; known: %s" % (", ".join(sorted(bad)),
                                                       ", ".join(WORKLOADS)))
    a.only = only
    for k in ("find_files", "find_folders", "small_files", "small_kib", "big_mib",
              "rss_entries", "empty_files", "rm_files", "head_repeat", "git_files",
              "thumb_files", "thumb_mib", "fio_mib", "fio_runtime", "repeat"):
        if getattr(a, k) < 1:
            ap.error("--%s must be at least 1" % k.replace("_", "-"))
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.jottafs:
        helpers.BIN = os.path.abspath(a.jottafs)
    jbin = helpers.BIN
    if not os.access(jbin, os.X_OK):
        sys.stderr.write("bench: no jottafs binary at %s (set JOTTAFS_BIN or --jottafs)\n"
                         % jbin)
        return 2
    if shutil.which("rclone") is None:
        sys.stderr.write("bench: rclone is not installed (apt-get install rclone)\n")
        return 2
    json_path = a.json or os.path.join(os.path.dirname(jbin), "bench.json")
    own_work = a.workdir is None
    if own_work:
        a.workdir = tempfile.mkdtemp(prefix="jottafs-bench-")
    else:
        os.makedirs(a.workdir, exist_ok=True)
    a.workdir = os.path.abspath(a.workdir)
    own_emu = a.emu_dir is None
    if own_emu:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        a.emu_dir = tempfile.mkdtemp(prefix="jottafs-bench-emu-", dir=shm or a.workdir)
    a.emu_dir = os.path.abspath(a.emu_dir)

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    b = Bench(a)
    t0 = time.monotonic()
    interrupted = None
    try:
        b.run()
    except Interrupted as e:
        interrupted = str(e)
        b.notes.append("interrupted by " + interrupted)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if own_work and not a.keep:
            shutil.rmtree(a.workdir, ignore_errors=True)
        if own_emu and not a.keep:
            shutil.rmtree(a.emu_dir, ignore_errors=True)
    wall = time.monotonic() - t0

    rc_version = subprocess.run(["rclone", "version"], capture_output=True, text=True,
                                timeout=30).stdout.splitlines()[:1]
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": wall,
        "quick": a.quick,
        "sizes": {k: getattr(a, k) for k in ("find_files", "find_folders", "small_files",
                                             "small_kib", "big_mib", "rss_entries",
                                             "empty_files", "rm_files", "tree_files",
                                             "git_files", "thumb_files", "thumb_mib",
                                             "fio_mib", "fio_runtime")},
        "repeat": a.repeat,
        "repeated_workloads": list(REPEATED),
        "latency_ms": a.latency_ms,
        "emulator_knobs": {"dedup": "off", "latency_ms": a.latency_ms,
                           "latency_kinds": "*"},
        "jottafs_bin": jbin,
        "emulator_data": a.emu_dir,
        "scratch": a.workdir,
        "jottafs_transport": ("plain http (--jottafs-plain-http)" if a.jottafs_plain_http
                              else "https via CONNECT proxy, like rclone"),
        "rclone": rc_version[0] if rc_version else "?",
        "rclone_flags": {"read": RcloneSide.flags(False),
                         "write": RcloneSide.flags(True)},
        "cpus": os.cpu_count(),
        "ratio": ">1 means jottafs is better; rclone/jottafs for lower-is-better rows, "
                 "jottafs/rclone for higher-is-better rows",
    }
    report = {"meta": meta, "rows": b.rows, "details": b.details, "notes": b.notes}
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True, default=str)

    print("jottafs vs rclone mount, same emulator (%s; latency %d ms unless noted; "
          "dedup off; %d cpus)" % ("quick sizes" if a.quick else "full sizes", a.latency_ms,
                                   os.cpu_count()))
    print("jottafs: %s; rclone: %s" % (meta["jottafs_transport"], meta["rclone"]))
    print("rclone flags: reads `%s`, writes `%s`" % (meta["rclone_flags"]["read"],
                                                    meta["rclone_flags"]["write"]))
    print("ratio > 1 means jottafs is better (formula per row)\n")
    print(table(b.rows))
    print()
    for r in b.rows:
        extra = []
        if r["note"]:
            extra.append(r["note"])
        for side in ("jottafs", "rclone"):
            if r[side + "_error"]:
                extra.append("%s %s" % (side, r[side + "_error"]))
        if extra:
            print("- %s / %s: %s" % (r["workload"], r["metric"], " | ".join(extra)))
    for n in b.notes:
        print("note: " + n.split("\n")[0] if "traceback" in n else "note: " + n)
    print("\nJSON: %s (%.0f s wall)" % (json_path, wall))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
