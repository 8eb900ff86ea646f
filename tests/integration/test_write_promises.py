"""Promises under real save patterns (issue 7, items 0, 1 and 3), restic included.

- A rename after fsync is never undone: editors, restic and package managers
  write a temporary file, fsync it, close it and rename it over (or to) its
  final name while other uploads run. Whatever order the fsync-triggered
  upload, its done callback, the rename and the unmount happen in, the
  service and the mount end with every file under the name it was last given.
- No false conflicts for a lone writer: a file changed again while an older
  upload of it is still in flight (slow uploads) is never taken for a change
  by another client, whether it is reopened each time or kept open with fsync
  (or msync of a shared mapping) now and then.
- Open files outlive their name (POSIX): after unlink or a rename over it, an
  open file reads back what it holds, and fstat says st_nlink == 0.
"""
import mmap
import os
import random
import re
import subprocess
import threading

from helpers import (MiB, clear_cache, encode_name, knobs, live, md5_bytes, read_file,
                           run_threads, write_file)

DBG = ["-d"] if os.environ.get("W_DEBUG") else []
SLOW = dict(latency_ms=300, latency_kinds="upload,allocate")
CONFLICT_RE = re.compile(r"\(conflict \d{4}-\d\d-\d\d \d{6}\)")


def J(m, *parts):
    return os.path.join(m.path, *parts)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def no_conflicts(emulator, account, *mounts):
    """Neither a conflict copy on the service nor a conflict line in a log."""
    names = sorted(p for p in live(emulator, account.user) if CONFLICT_RE.search(p))
    assert not names, "false conflict copies on the service: %r" % names
    for m in mounts:
        lines = [ln for ln in m.output().splitlines()
                 if "changed on the server" in ln or "conflict" in ln]
        assert not lines, "conflicts reported while only this mount wrote:\n" + \
            "\n".join(lines[:20])


class Background:
    """Other uploads running meanwhile: a thread writing and rewriting files."""

    def __init__(self, dirpath, size=MiB, files=6):
        self.dir, self.size, self.files = dirpath, size, files
        self.stop = threading.Event()
        self.error = None
        os.makedirs(dirpath, exist_ok=True)
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                write_file(os.path.join(self.dir, "bg%d.bin" % (i % self.files)),
                           os.urandom(self.size))
                i += 1
        except OSError as e:
            self.error = e

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(120)
        assert self.error is None, "background writer failed: %r" % self.error


# ------------------------------------------------------------------ item 0

def test_editor_save_loop_under_upload_load(account, emulator, mounter):
    """Write .doc.txt.swp, fsync, close, rename over doc.txt, fsync the
    directory, 40 times, while other files upload: doc.txt always holds the
    last save, locally and (after unmount) on the service, and nothing is
    left under the swap name, in the trash as the document, or as a
    conflict copy."""
    m = mounter(account, extra_args=DBG)
    d = J(m, "docs")
    os.mkdir(d)
    last = None
    with knobs(emulator, latency_ms=100, latency_kinds="upload,allocate"):
        with Background(J(m, "bg")):
            for i in range(40):
                last = (b"version %d\n" % i) * random.randint(1, 4000)
                swp = os.path.join(d, ".doc.txt.swp")
                with open(swp, "wb") as f:
                    f.write(last)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(swp, os.path.join(d, "doc.txt"))
                fsync_dir(d)
                assert sorted(os.listdir(d)) == ["doc.txt"], (i, os.listdir(d))
                assert read_file(os.path.join(d, "doc.txt")) == last, i
    m.unmount(timeout=300)
    t = live(emulator, account.user)
    docs = sorted(p for p in t if p.startswith("docs/"))
    assert docs == ["docs/doc.txt"], docs
    assert t["docs/doc.txt"]["md5"] == md5_bytes(last), t["docs/doc.txt"]
    assert emulator.content("docs/doc.txt", user=account.user) == last
    no_conflicts(emulator, account, m)
    m2 = mounter(account, path=m.path, extra_args=DBG)
    assert read_file(J(m2, "docs", "doc.txt")) == last
    m2.unmount()


def test_parallel_fsync_rename_then_unmount(account, emulator, mounter):
    """8 threads each write 16 MB to fN-tmp, fsync, rename to fN; the mount
    is unmounted at once. After a remount every file is fN with its bytes,
    on the mount and on the service, and no fN-tmp is left. Three rounds."""
    for rnd in range(3):
        m = mounter(account, extra_args=DBG)
        d = J(m, "r%d" % rnd)
        os.mkdir(d)
        want, errors = {}, []

        def one(n):
            try:
                data = os.urandom(16 * MiB)
                tmp = os.path.join(d, "f%d-tmp" % n)
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(tmp, os.path.join(d, "f%d" % n))
                want["f%d" % n] = md5_bytes(data)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((n, e))

        with Background(J(m, "bg%d" % rnd), size=2 * MiB):
            run_threads(one, 8, 600)
        assert not errors, errors
        m.unmount(timeout=600)
        t = live(emulator, account.user)
        got = {p.split("/", 1)[1]: x["md5"] for p, x in t.items()
               if p.startswith("r%d/" % rnd) and x["type"] == "file"}
        assert got == want, "round %d: service holds %r" % (rnd, sorted(got))
        m2 = mounter(account, path=m.path, extra_args=DBG)
        assert sorted(os.listdir(d)) == sorted(want), (rnd, os.listdir(d))
        m2.unmount()
        no_conflicts(emulator, account, m, m2)


def _restic(repo, *args, timeout=600):
    env = dict(os.environ, RESTIC_PASSWORD="jottafs-test", RESTIC_REPOSITORY=repo)
    p = subprocess.run(["restic", "--no-cache", "--quiet"] + list(args), env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, "restic %s failed (%d):\n%s%s" % (
        " ".join(args), p.returncode, p.stdout[-4000:], p.stderr[-4000:])
    return p.stdout


def test_restic_init_backup_check_after_remount(account, emulator, mounter, tmp_path):
    """restic writes every repository file as a temporary file, fsyncs it
    and renames it to its final name. Under slow uploads and other uploads
    running, 2 of 7 inits left `config-tmp-NNN` and backups left packs under
    temporary names. Here: 3 inits, a backup of ~300 files (small and a few
    MB), then a remount on an emptied cache and `restic check --read-data`
    (every pack downloaded and verified); the service holds no temporary
    name and no conflict copy."""
    rng = random.Random(7)
    src = tmp_path / "src"
    for d in range(10):
        (src / ("d%d" % d)).mkdir(parents=True)
        for i in range(30):
            (src / ("d%d" % d) / ("f%d" % i)).write_bytes(
                rng.randbytes(rng.choice([0, 100, 5000, 40000])))
    (src / "big.bin").write_bytes(rng.randbytes(6 * MiB))
    m = mounter(account, extra_args=DBG)
    with knobs(emulator, latency_ms=100, latency_kinds="upload,allocate"):
        with Background(J(m, "bg")):
            for n in range(3):
                repo = J(m, "repo%d" % n)
                _restic(repo, "init")
                assert os.path.isfile(os.path.join(repo, "config")), os.listdir(repo)
            _restic(J(m, "repo0"), "backup", str(src))
    m.unmount(timeout=600)
    clear_cache(account)
    t = live(emulator, account.user)
    left = sorted(p for p in t if p.startswith("repo") and "-tmp-" in p)
    assert not left, "temporary names left on the service: %r" % left
    for n in range(3):
        assert "repo%d/config" % n in t, sorted(p for p in t if p.startswith("repo%d/" % n))
    m2 = mounter(account, path=m.path, extra_args=DBG)
    out = _restic(J(m2, "repo0"), "check", "--read-data")
    snaps = _restic(J(m2, "repo0"), "snapshots", "--json")
    assert snaps.count('"id"') == 1, snaps
    restored = tmp_path / "restored"
    _restic(J(m2, "repo0"), "restore", "latest", "--target", str(restored))
    sub = restored / str(src).lstrip("/")
    assert (sub / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert sorted(os.listdir(sub / "d3")) == sorted(os.listdir(src / "d3"))
    m2.unmount()
    no_conflicts(emulator, account, m, m2)
    print(out)


# ------------------------------------------------------------------ item 1

def _check_lone_writer(emulator, account, m, name, model):
    m.unmount(timeout=300)
    t = live(emulator, account.user)
    x = t.get(encode_name(name))
    assert x is not None and x["md5"] == md5_bytes(bytes(model)), (
        "the service holds %r, the model has md5 %s" % (x and x["md5"], md5_bytes(bytes(model))))
    assert emulator.content(encode_name(name), user=account.user) == bytes(model)
    no_conflicts(emulator, account, m)


def test_lone_writer_reopen_loop_slow_uploads(account, emulator, mounter):
    """open(O_RDWR), pwrite or ftruncate, (every third round fsync,) close,
    60 rounds while earlier uploads of the same file are in flight (the
    fsyncs start them at once, the closes queue newer versions behind them):
    never a conflict, and the service ends with the newest content."""
    m = mounter(account, extra_args=DBG)
    p = J(m, "lone.bin")
    model = bytearray(os.urandom(200000))
    write_file(p, bytes(model))
    rng = random.Random(7)
    with knobs(emulator, **SLOW):
        for i in range(60):
            fd = os.open(p, os.O_RDWR)
            try:
                if rng.random() < 0.2:
                    n = rng.randint(1000, 260000)
                    os.ftruncate(fd, n)
                    model = model[:n] + bytearray(max(0, n - len(model)))
                else:
                    off = rng.randint(0, len(model))
                    data = os.urandom(rng.randint(1, 5000))
                    os.pwrite(fd, data, off)
                    end = off + len(data)
                    if end > len(model):
                        model += bytearray(end - len(model))
                    model[off:end] = data
                if i % 3 == 2:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if i % 10 == 9:
                assert read_file(p) == bytes(model), i
        assert read_file(p) == bytes(model)
    _check_lone_writer(emulator, account, m, "lone.bin", model)


def _one_descriptor(emulator, account, mounter, use_mmap):
    m = mounter(account, extra_args=DBG)
    p = J(m, "one.bin")
    size = 256 * 1024
    model = bytearray(os.urandom(size))
    write_file(p, bytes(model))
    rng = random.Random(11)
    with knobs(emulator, **SLOW):
        fd = os.open(p, os.O_RDWR)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED) if use_mmap else None
        try:
            for i in range(40):
                off = rng.randint(0, size - 5000)
                data = os.urandom(5000)
                if mm is not None:
                    mm[off:off + 5000] = data
                    mm.flush()
                else:
                    os.pwrite(fd, data, off)
                    os.fsync(fd)
                model[off:off + 5000] = data
                st = os.fstat(fd)
                assert st.st_size == size, (i, st.st_size)
            os.ftruncate(fd, size)
            assert os.pread(fd, size, 0) == bytes(model)
        finally:
            if mm is not None:
                mm.close()
            os.close(fd)
        assert read_file(p) == bytes(model)
    _check_lone_writer(emulator, account, m, "one.bin", model)


def test_lone_writer_one_descriptor_fsync(account, emulator, mounter):
    _one_descriptor(emulator, account, mounter, use_mmap=False)


def test_lone_writer_one_descriptor_msync(account, emulator, mounter):
    _one_descriptor(emulator, account, mounter, use_mmap=True)


# ------------------------------------------------------------------ item 3

def _outlives(m, emulator, account, dirty, how):
    p = J(m, "victim-%s-%s" % ("dirty" if dirty else "clean", how))
    base = os.urandom(300000)
    with open(p, "wb") as f:
        f.write(base)
        f.flush()
        os.fsync(f.fileno())        # clean: the service holds it
    fd = os.open(p, os.O_RDWR)
    try:
        want = bytearray(base)
        if dirty:
            extra = os.urandom(7000)
            os.pwrite(fd, extra, 123456)
            want[123456:123456 + 7000] = extra
        else:
            # clean: make sure the content is read from the cache and the server
            assert os.pread(fd, 4096, 0) == base[:4096]
        if how == "unlink":
            os.unlink(p)
        else:
            write_file(p + ".new", b"the replacement")
            os.rename(p + ".new", p)
        st = os.fstat(fd)
        assert st.st_nlink == 0, st
        assert st.st_size == len(want), st
        assert os.pread(fd, len(want) + 10, 0) == bytes(want)
        # and it can still be written and read back
        os.pwrite(fd, b"after", 5)
        want[5:10] = b"after"
        assert os.pread(fd, len(want), 0) == bytes(want)
        assert os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    if how == "rename":
        assert read_file(p) == b"the replacement"
    else:
        assert not os.path.exists(p)


def test_open_files_outlive_their_name(account, emulator, mounter):
    m = mounter(account, extra_args=DBG)
    for dirty in (False, True):
        for how in ("unlink", "rename"):
            _outlives(m, emulator, account, dirty, how)
    m.unmount()
    t = live(emulator, account.user)
    assert sorted(t) == ["victim-clean-rename", "victim-dirty-rename"], sorted(t)
    assert emulator.content("victim-dirty-rename", user=account.user) == b"the replacement"
