"""Real tools writing into the mount (issue 4): cp -a, rsync -a, tar -x, sqlite3.

What lands on the server is checked by unmodified rclone 1.60 (`rclone check`
of the source against the remote, with the encoding jottafs writes) and by
reading everything back through a fresh mount with an emptied cache (diff -r,
tar -d, PRAGMA integrity_check).
"""
import os
import random
import subprocess
import time

from helpers import (MiB, clear_cache, encode_path, live, md5_file, rclone_check,
                           rclone_for, run)

BIG = 200 * MiB

# Names of every class the encoder touches (api doc 11.2) and neighbours it
# must leave alone. rclone 1.60 reads all of these the way jottafs writes them.
ODD = [
    'dq"uote', "star*", "colon:x", "lt<gt>", "what?", "pipe|x", "pct%", "pct%41hex",
    "ctl\x01char", "tab\tname", "us\x1fx", "del\x7fx", "bad\udcffbyte", "lone\udcc3lead",
    "trunc\udce2\udc80seq", "fullwidth\uff1fq", "fullwidth\uff05pct", "fw\uff0astar",
    "ctlpic\u2401lit", "delpic\u2421lit", " lead", "trail ", "dot.",
    "back\\slash", "hash#amp&semi;plus+eq=", "utf8-\u00e6\u00f8\u00e5-\u00fc",
    "emoji-\U0001F600", "combining-e\u0301", "L" * 255, "?" * 200, "x\uff0ey",
]
# Names rclone 1.60's local backend cannot carry (api doc 11.5): checked
# through the emulator and diff -r only, never by rclone. Its local encoding
# (Base) also reads a literal U+2400 in a local name as NUL, so rclone stores
# "x\u2400y" for it where jottafs (and rclone's own Encode) store "x\u201b\u2400y".
QUIRKS = ["quote\u201brune", "\u201b", "\uff0e", "\uff0e\uff0e", "full\uff0fslash",
          "nulpic\u2400lit"]


def _w(path, data, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def make_source(root, rng, big=BIG):
    """>= 500 files: odd names of every class, empty dirs, mtimes, one big file."""
    os.makedirs(root)
    n = 0
    for d in range(20):
        dd = os.path.join(root, "plain", "d%02d" % d)
        os.makedirs(dd)
        for i in range(23):
            _w(os.path.join(dd, "f%02d.txt" % i), rng.randbytes(rng.choice([0, 1, 17, 900, 4096, 12000])),
               1400000000 + rng.randrange(10 ** 8))
            n += 1
    odd = os.path.join(root, "odd ?:*")
    os.makedirs(odd)
    for i, name in enumerate(ODD):
        _w(os.path.join(odd, name), ("odd %d %r\n" % (i, name)).encode("utf-8", "surrogateescape"),
           1500000000 + i)
        n += 1
    for i, name in enumerate(ODD[:12]):
        sub = os.path.join(root, "odd dirs", name)
        os.makedirs(sub)
        _w(os.path.join(sub, "inside"), b"inside %d\n" % i, 1500000100 + i)
        n += 1
    q = os.path.join(root, "quirks")
    os.makedirs(q)
    for i, name in enumerate(QUIRKS):
        _w(os.path.join(q, name), b"quirk %d\n" % i, 1500000200 + i)
        n += 1
    for e in ("empty", "nest/e1/e2", "odd dirs/empty <|>", "quirks/empty"):
        os.makedirs(os.path.join(root, e), exist_ok=True)
    for i in range(5):
        _w(os.path.join(root, "medium%d.bin" % i), rng.randbytes(MiB * (i + 1) + i), 1600000000 + i)
        n += 1
    with open(os.path.join(root, "big.bin"), "wb") as f:
        left = big
        while left:
            c = min(left, 8 * MiB)
            f.write(rng.randbytes(c))
            left -= c
    os.utime(os.path.join(root, "big.bin"), (1650000000, 1650000000))
    n += 1
    assert n >= 500, n
    return n


def source_files(root):
    out = {}
    for dp, _, fs in os.walk(os.fsencode(root)):
        for f in fs:
            p = os.path.join(dp, f)
            out[os.path.relpath(p, os.fsencode(root))] = p
    return out


def diff_problems(a, b):
    """diff -r @a @b: [] when identical, else one problem with diff's output."""
    p = run("diff", "-r", a, b)
    if p.returncode == 0:
        return []
    return ["diff -r %s %s exited %d:\n%s%s" % (a, b, p.returncode,
                                                p.stdout.decode(errors="replace")[-4000:],
                                                p.stderr.decode(errors="replace")[-2000:])]


def diff_r(a, b):
    bad = diff_problems(a, b)
    assert not bad, bad[0]


def server_problems(emulator, user, src, prefix):
    """Every source file is on the server under its encoded name, same md5 and
    mtime (1 s), one revision; every source directory (empty ones too) is a
    folder; nothing else (temp files, incomplete uploads) is left there."""
    t = live(emulator, user)
    files = source_files(src)
    bad = []
    for rel, p in files.items():
        sp = prefix + "/" + encode_path(rel)
        x = t.get(sp)
        if x is None:
            bad.append("missing %r (server %r)" % (rel, sp))
            continue
        if x["md5"] != md5_file(p) or x["size"] != os.path.getsize(p):
            bad.append("content of %r differs: %r" % (rel, x))
        if x["modified"] != int(os.stat(p).st_mtime):
            bad.append("mtime of %r: server %s, source %d" % (rel, x["modified"],
                                                              int(os.stat(p).st_mtime)))
        if x["revisions"] != 1:
            bad.append("%r has %d revisions (uploaded more than once)" % (rel, x["revisions"]))
    for dp, ds, _ in os.walk(os.fsencode(src)):
        for d in ds:
            rel = os.path.relpath(os.path.join(dp, d), os.fsencode(src))
            x = t.get(prefix + "/" + encode_path(rel))
            if x is None or x["type"] != "folder":
                bad.append("directory %r missing" % rel)
    extra = [p for p in t if p.startswith(prefix + "/") and
             t[p]["type"] == "file" and p not in {prefix + "/" + encode_path(r) for r in files}]
    bad += ["unexpected file on the server: %r (size %s, md5 %s, latest state %s)" % (
        p, t[p]["size"], t[p]["md5"], t[p]["latest_state"]) for p in extra]
    return bad


def check_server_against_source(emulator, user, src, prefix):
    bad = server_problems(emulator, user, src, prefix)
    assert not bad, "%d problems:\n%s" % (len(bad), "\n".join(bad[:40]))


def test_cp_a_and_rsync_a_tree(account, emulator, mounter, tmp_path):
    rng = random.Random(4)
    src = str(tmp_path / "src")
    n = make_source(src, rng)
    m = mounter(account)
    t0 = time.monotonic()
    p = run("cp", "-a", src, os.path.join(m.path, "cp"))
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    t_cp = time.monotonic() - t0
    t0 = time.monotonic()
    p = run("rsync", "-a", src + "/", os.path.join(m.path, "rsync") + "/")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    t_rsync = time.monotonic() - t0
    # A second rsync finds every file up to date (sizes and mtimes as written).
    p = run("rsync", "-a", "--itemize-changes", src + "/", os.path.join(m.path, "rsync") + "/")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    changed = [ln for ln in p.stdout.decode(errors="replace").splitlines() if not ln.startswith(".d")]
    assert changed == [], "a second rsync -a transfers again:\n" + "\n".join(changed[:40])
    problems = diff_problems(src, os.path.join(m.path, "cp"))
    t0 = time.monotonic()
    m.unmount(timeout=300)
    t_unmount = time.monotonic() - t0
    print("%d files: cp -a %.1f s, rsync -a %.1f s, unmount (uploads) %.1f s" % (
        n, t_cp, t_rsync, t_unmount))
    # Everything is checked before anything is asserted, so that one failure
    # does not hide the others.
    for d in ("cp", "rsync"):
        problems += server_problems(emulator, account.user, src, d)
    rc = rclone_for(emulator, account, tmp_path / "rclone")
    for d in ("cp", "rsync"):
        try:
            err = rclone_check(rc, src, "jc:" + d, "--exclude", "/quirks/**")
            if "%d matching files" % (n - len(QUIRKS)) not in err:
                problems.append("rclone check jc:%s: not every file matched:\n%s" % (d, err[-3000:]))
        except AssertionError as e:
            problems.append(str(e))
    # A fresh mount with an emptied cache reads the same bytes back.
    clear_cache(account)
    m = mounter(account)
    problems += diff_problems(src, os.path.join(m.path, "cp"))
    problems += diff_problems(src, os.path.join(m.path, "rsync"))
    m.unmount()
    assert not problems, "%d problems:\n%s" % (len(problems), "\n".join(problems[:40]))


def test_tar_extract_then_compare(account, emulator, mounter, tmp_path):
    rng = random.Random(7)
    src = str(tmp_path / "tsrc")
    os.makedirs(src)
    for i in range(150):
        d = os.path.join(src, "dir%d" % (i % 7), "sub %d" % (i % 3))
        os.makedirs(d, exist_ok=True)
        _w(os.path.join(d, "%03d %s.dat" % (i, "?:*|<>"[i % 6])),
           rng.randbytes(rng.choice([0, 10, 5000, 70000])), 1300000000 + i * 7)
    for name in ODD[:20]:
        _w(os.path.join(os.fsencode(src), b"o-" + os.fsencode(name)), os.fsencode(name), 1310000000)
    os.makedirs(os.path.join(src, "empty", "deeper"))
    _w(os.path.join(src, "large.bin"), rng.randbytes(20 * MiB + 3), 1320000000)
    arch = str(tmp_path / "a.tar")
    p = run("tar", "--format=gnu", "-cf", arch, "-C", src, ".")
    assert p.returncode == 0, p.stderr
    m = mounter(account)
    os.mkdir(os.path.join(m.path, "t"))
    p = run("tar", "-xf", arch, "-C", os.path.join(m.path, "t"))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    p = run("tar", "-df", arch, "-C", os.path.join(m.path, "t"))
    assert p.returncode == 0 and p.stdout == b"", (p.stdout + p.stderr).decode(errors="replace")
    m.unmount()
    clear_cache(account)
    m = mounter(account)
    p = run("tar", "-df", arch, "-C", os.path.join(m.path, "t"))
    assert p.returncode == 0 and p.stdout == b"", (p.stdout + p.stderr).decode(errors="replace")
    m.unmount()


def _sqlite(db, sql, timeout=180):
    p = subprocess.run(["sqlite3", "-batch", "-bail", db], input=sql, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, "sqlite3 exited %d: %s" % (p.returncode, p.stderr)
    return p.stdout


def _inserts(journal_mode):
    sql = ["PRAGMA journal_mode=%s;" % journal_mode,
           "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB);"]
    for tx in range(10):
        sql.append("BEGIN;")
        for i in range(100):
            sql.append("INSERT INTO t(k, v) VALUES('key %d-%d', randomblob(%d));"
                       % (tx, i, 200 + (i * 37) % 900))
        sql.append("COMMIT;")
    # Updates and deletes too, so pages are rewritten in place.
    sql.append("BEGIN; UPDATE t SET v = randomblob(300) WHERE id % 10 = 0; "
               "DELETE FROM t WHERE id % 50 = 0; COMMIT;")
    sql.append("BEGIN; INSERT INTO t(k, v) SELECT 'again ' || id, v FROM t WHERE id % 50 = 1 "
               "LIMIT 20; COMMIT;")
    return "\n".join(sql) + "\n"


def _sqlite_case(account, mounter, journal_mode):
    m = mounter(account)
    db = os.path.join(m.path, "db dir", "test.db")
    os.mkdir(os.path.dirname(db))
    _sqlite(db, _inserts(journal_mode))
    check = "PRAGMA integrity_check;\nSELECT count(*) FROM t;\n"
    want_rows = str(1000 - 20 + 20)
    out = _sqlite(db, check).split()
    assert out == ["ok", want_rows], out
    dump = _sqlite(db, ".dump\n")
    m.unmount()
    clear_cache(account)
    m = mounter(account)
    db = os.path.join(m.path, "db dir", "test.db")
    out = _sqlite(db, check).split()
    assert out == ["ok", want_rows], out
    assert _sqlite(db, ".dump\n") == dump
    # Nothing else is left: the journal or WAL went away with the last close.
    assert sorted(os.listdir(os.path.dirname(db))) == ["test.db"], os.listdir(os.path.dirname(db))
    m.unmount()


def test_sqlite_rollback_journal(account, mounter):
    _sqlite_case(account, mounter, "DELETE")


def test_sqlite_wal(account, mounter):
    _sqlite_case(account, mounter, "WAL")
