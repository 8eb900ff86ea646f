"""The mount's read path against the emulator: listings, names, attributes,
content, the caches, recursive walks, faults, unmount.

Every test unmounts with fusermount3 -u and requires exit status 0 and a log
free of error lines and sanitizer reports (helpers.Mount.unmount).
"""
import json
import os
import stat
import subprocess
import threading
import time

import pytest

from helpers import BIN, DaemonFailed, md5_file, read_file, run, wait_for, wait_steady

MiB = 1 << 20

# POSIX names of every class the encoder maps, plus neighbours it must leave
# alone. rclone 1.60 (the Debian peer) writes them; the mount must show
# them under the same names.
ODD_NAMES = [
    'quote"d', "star*", "colon:x", "lt<gt>", "what?", "pipe|x", "pct%zz",  # "%" + two hex digits is refused by the service (400)
    "ctl\x01char", "tab\tname", "del\x7fx", "bad\xffbyte".encode("latin-1").decode("utf-8", "surrogateescape"),
    "fullwidth\uff1a colon", "back\\slash", "hash#&semi;plus+", " lead", "trail ",
    "dot.", "utf8-\u00e6\u00f8\u00e5-\u00fc", "emoji-\U0001F600",
]


def fsencode(name):
    return os.fsencode(name)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_local_tree(root):
    """A small tree with every odd name, empty dirs and files of several sizes."""
    os.makedirs(root)
    rnd = os.urandom
    write(os.path.join(root, "empty"), b"")
    write(os.path.join(root, "one"), b"x")
    write(os.path.join(root, "small.txt"), b"hello jottafs\n" * 10)
    write(os.path.join(root, "medium.bin"), rnd(300 * 1024 + 17))
    write(os.path.join(root, "large.bin"), rnd(5 * MiB + 3))
    os.makedirs(os.path.join(root, "empty dir"))
    odd = os.path.join(root, "odd")
    os.makedirs(odd)
    for i, name in enumerate(ODD_NAMES):
        write(os.path.join(fsencode(odd), fsencode(name)), ("content %d\n" % i).encode())
    deep = os.path.join(root, "a", "b", "c", "d")
    os.makedirs(deep)
    write(os.path.join(deep, "leaf"), b"leaf\n")
    for i in range(5):
        d = os.path.join(root, "wide", "d%02d" % i)
        os.makedirs(d)
        for j in range(4):
            write(os.path.join(d, "f%d" % j), rnd(1000 + j))


def test_tree_written_by_rclone(account, rclone, mounter, tmp_path):
    """find, du, ls -lR, stat, cat, cmp, diff -r over a tree rclone uploaded."""
    src = str(tmp_path / "src")
    make_local_tree(src)
    rclone.run("copy", src, "jc:")
    # rclone 1.60 skips empty directories on copy; create it the rclone way.
    rclone.run("mkdir", "jc:empty dir")
    m = mounter(account)
    p = run("diff", "-r", src, m.path)
    assert p.returncode == 0, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")

    def listing(root):
        """Every entry as 'path type [size]' (directory sizes differ by nature)."""
        out = run("find", root, "-printf", "%P\t%y\t%s\n").stdout.splitlines()
        return sorted(l.rsplit(b"\t", 1)[0] if b"\td\t" in l else l for l in out)
    assert listing(src) == listing(m.path)
    # Every odd name is there, byte for byte.
    names = sorted(os.listdir(os.path.join(fsencode(m.path), b"odd")))
    assert names == sorted(fsencode(n) for n in ODD_NAMES)
    # du counts the content.
    du = int(run("du", "-s", "-B1", "--apparent-size", m.path).stdout.split()[0])
    du_src = int(run("du", "-s", "-B1", "--apparent-size", src).stdout.split()[0])
    assert du >= sum(os.path.getsize(os.path.join(dp, f))
                     for dp, _, fs in os.walk(src) for f in fs)
    assert du > 0 and du_src > 0
    assert run("ls", "-lR", m.path).returncode == 0
    st = os.stat(os.path.join(m.path, "large.bin"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 5 * MiB + 3
    assert st.st_mode & 0o777 == 0o644
    assert os.stat(os.path.join(m.path, "a")).st_mode & 0o777 == 0o755
    # Times survive (rclone sends the local mtime, 1 s precision).
    assert int(st.st_mtime) == int(os.stat(os.path.join(src, "large.bin")).st_mtime)
    for rel in ("large.bin", "medium.bin", "small.txt", "empty", "one"):
        assert run("cmp", os.path.join(src, rel), os.path.join(m.path, rel)).returncode == 0
    # Ranges: dd skip= and tail -c read the right bytes.
    with open(os.path.join(src, "large.bin"), "rb") as f:
        f.seek(3 * MiB + 5)
        want = f.read(4096)
        f.seek(-1000, 2)
        tail = f.read()
    p = run("dd", "if=" + os.path.join(m.path, "large.bin"), "bs=1", "skip=%d" % (3 * MiB + 5),
            "count=4096", "status=none")
    assert p.stdout == want
    assert run("tail", "-c", "1000", os.path.join(m.path, "large.bin")).stdout == tail
    m.unmount()


def test_xattrs(account, emulator, mounter):
    emulator.seed([{"path": "d/f.bin", "size": 123456}], user=account.user)
    m = mounter(account)
    f = os.path.join(m.path, "d", "f.bin")
    md5 = md5_file(f)
    p = run("getfattr", "--only-values", "-n", "user.jottacloud.md5", f)
    assert p.returncode == 0 and p.stdout.decode() == md5
    names = os.listxattr(f)
    assert set(names) == {"user.jottacloud.md5", "user.jottacloud.revision",
                          "user.jottacloud.created", "user.jottacloud.updated",
                          "user.jottacloud.state"}
    assert os.getxattr(f, "user.jottacloud.state") == b"synced"
    assert os.getxattr(f, "user.jottacloud.revision") == b"1"
    assert os.getxattr(f, "user.jottacloud.updated").endswith(b"Z")
    with pytest.raises(OSError) as e:
        os.getxattr(f, "user.other")
    assert e.value.errno == 61  # ENODATA
    with pytest.raises(OSError) as e:
        os.setxattr(f, "user.jottacloud.md5", b"x")
    assert e.value.errno == 95  # ENOTSUP
    # The size query protocol: a too small buffer is ERANGE.
    p = run("python3", "-c", "import ctypes,sys;l=ctypes.CDLL(None);b=ctypes.create_string_buffer(4);"
            "r=l.getxattr(sys.argv[1].encode(),b'user.jottacloud.md5',b,4);"
            "print(r, ctypes.get_errno())", f)
    assert p.stdout.split()[0] == b"-1"
    m.unmount()


def test_df_shows_quota(account, emulator, mounter):
    emulator.seed([{"path": "f", "size": 3 * MiB}], user=account.user)
    emulator.set_knobs(capacity=10 << 30)
    try:
        m = mounter(account)
        st = os.statvfs(m.path)
        assert st.f_blocks * st.f_frsize == 10 << 30
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        assert 3 * MiB <= used < 10 * MiB
        assert st.f_namemax == 765     # 255 UTF-16 units, 3 bytes each at most
        assert b"Jotta/Archive" in run("df", m.path).stdout
        m.unmount()
    finally:
        emulator.set_knobs(capacity=-1)
    # Unlimited: a nominal total with free = total - used.
    m = mounter(account)
    st = os.statvfs(m.path)
    assert st.f_blocks * st.f_frsize >= 1 << 50
    assert st.f_bfree < st.f_blocks
    m.unmount()


def test_small_probe_of_huge_file(account, emulator, mounter):
    """Reading the first 64 KiB of a 1 GiB file transfers less than 1 MiB."""
    emulator.seed([{"path": "huge.bin", "size": 1 << 30, "fill": "zero"}], user=account.user)
    m = mounter(account)
    emulator.reset_stats()
    with open(os.path.join(m.path, "huge.bin"), "rb") as f:
        assert f.read(65536) == bytes(65536)
    got = wait_steady(lambda: emulator.stats()["download_bytes"], "the read-ahead in flight")
    print("64 KiB probe of a 1 GiB file: %d bytes downloaded" % got)
    assert got < MiB
    m.unmount()


def test_head_probe_of_huge_file_stays_small(account, emulator, mounter):
    """`head -c 65536` (small reads, the kernel's read-ahead on top) on a cold
    cache: our read-ahead must not amplify the kernel's past 1 MiB."""
    emulator.seed([{"path": "huge.bin", "size": 1 << 30, "fill": "zero"}], user=account.user)
    m = mounter(account)
    os.listdir(m.path)
    emulator.reset_stats()
    p = subprocess.run(["head", "-c", "65536", os.path.join(m.path, "huge.bin")],
                       capture_output=True, check=True)
    assert p.stdout == bytes(65536)
    got = wait_steady(lambda: emulator.stats()["download_bytes"], "the read-ahead in flight")
    print("head -c 65536 of a 1 GiB file: %d bytes downloaded" % got)
    assert got < MiB
    m.unmount()


def test_unmount_right_after_reads_closes_every_handle(account, emulator, mounter):
    """Issue 7 item 11: the kernel does not send every release before an
    unmount ends the session; the handles left are closed at shutdown, not
    leaked ("still open at shutdown", LeakSanitizer in op_open)."""
    emulator.seed([{"path": "f%d.bin" % i, "size": MiB, "fill": "zero"} for i in range(20)],
                  user=account.user)
    for _ in range(4):
        m = mounter(account)
        for i in range(20):
            subprocess.run(["head", "-c", "65536", os.path.join(m.path, "f%d.bin" % i)],
                           capture_output=True, check=True)
        out = m.unmount()
        assert "still open at shutdown" not in out, out


def seed_tree(emulator, user, dirs=20, files=5):
    entries = []
    for i in range(dirs):
        for j in range(files):
            entries.append({"path": "t/g%d/d%02d/f%d" % (i % 4, i, j), "content": "x" * j})
        entries.append({"path": "t/g%d/d%02d/sub/leaf" % (i % 4, i), "content": "leaf"})
    emulator.seed(entries, user=user)
    return dirs * (files + 2) + 4 + 1  # files, subdirs, leaves, groups, t


def test_cold_find_uses_one_liststream(account, emulator, mounter):
    seed_tree(emulator, account.user)
    m = mounter(account)
    emulator.reset_stats()
    out = run("find", m.path).stdout.splitlines()
    assert len(out) == 1 + 1 + 4 + 20 * 2 + 20 * 6
    req = emulator.stats()["requests"]
    print("cold find: %d folder GETs, %d liststreams" % (req["folder"], req["liststream"]))
    assert req["liststream"] == 1
    assert req["folder"] <= 4
    # A second walk is served from the cache.
    emulator.reset_stats()
    assert len(run("find", m.path).stdout.splitlines()) == len(out)
    req = emulator.stats()["requests"]
    assert req["folder"] == 0 and req["liststream"] == 0
    m.unmount()


def test_prefetch_streams_at_mount(account, emulator, mounter):
    seed_tree(emulator, account.user, dirs=8)
    emulator.reset_stats()
    m = mounter(account, options=["prefetch"])
    wait_for(lambda: emulator.stats()["requests"]["liststream"] >= 1, 10, "the prefetch stream")
    # no wait for its end: a walk joins the stream in flight (no folder request)
    run("find", m.path)
    req = emulator.stats()["requests"]
    assert req["liststream"] == 1
    assert req["folder"] == 0
    m.unmount()


def test_remount_lists_from_cache(account, emulator, mounter):
    """A remount lists a known tree at once and revalidates in the background."""
    seed_tree(emulator, account.user, dirs=8)
    m = mounter(account)
    before = sorted(run("find", m.path, "-printf", "%P %s\n").stdout.splitlines())
    m.unmount()
    emulator.set_knobs(latency_ms=1500, latency_kinds="folder,liststream")
    emulator.reset_stats()      # the emulator is shared by the module's tests
    try:
        m = mounter(account)
        t0 = time.monotonic()
        after = sorted(run("find", m.path, "-printf", "%P %s\n").stdout.splitlines())
        took = time.monotonic() - t0
        assert after == before
        assert took < 1.0, "find after remount took %.2f s" % took
        # The walk is revalidated by one stream, not a request per folder.
        wait_for(lambda: emulator.stats()["requests"]["liststream"] >= 1, 20,
                 "the revalidation stream")
    finally:
        emulator.set_knobs(latency_ms=0)
    req = emulator.stats()["requests"]
    assert req["liststream"] == 1 and req["folder"] <= 3, req
    m.unmount()


def test_revalidation_sees_remote_changes(account, emulator, mounter):
    emulator.seed([{"path": "d/keep", "content": "same"},
                   {"path": "d/change", "content": "old content"},
                   {"path": "d/gone", "content": "bye"}], user=account.user)
    m = mounter(account, options=["dir_cache_time=1"])
    d = os.path.join(m.path, "d")
    assert sorted(os.listdir(d)) == ["change", "gone", "keep"]
    with open(os.path.join(d, "change")) as f:
        assert f.read() == "old content"
    # Another client changes the folder.
    emulator.seed([{"path": "d/change", "content": "new content, longer"},
                   {"path": "d/new", "content": "fresh"},
                   {"path": "d/gone", "content": "bye", "deleted": True}], user=account.user)
    wait_for(lambda: sorted(os.listdir(d)) == ["change", "keep", "new"], 60,
             "the mount to see the other client's changes (dir_cache_time=1)")
    with open(os.path.join(d, "change")) as f:
        assert f.read() == "new content, longer"
    assert not os.path.exists(os.path.join(d, "gone"))
    m.unmount()


def test_names_decoding_alike(account, emulator, mounter):
    """Two server names that decode to one POSIX name: the canonical spelling
    keeps the name, the other is shown with a suffix from its own server name
    (test_name_collisions.py has the rest)."""
    emulator.seed([{"path": "x/a:b", "content": "raw colon"},
                   {"path": "x/a\uff1ab", "content": "canonical"},
                   {"path": "x/msf:1.jpg", "content": "android"}], user=account.user)
    m = mounter(account)
    x = os.path.join(m.path, "x")
    assert sorted(os.listdir(x)) == ["a:b", "a:b (jottacloud 08bd8540)", "msf:1.jpg"]
    with open(os.path.join(x, "a:b")) as f:
        assert f.read() == "canonical"
    with open(os.path.join(x, "a:b (jottacloud 08bd8540)")) as f:
        assert f.read() == "raw colon"
    # A non-canonical name made by another client is reachable as listed.
    with open(os.path.join(x, "msf:1.jpg")) as f:
        assert f.read() == "android"
    m.unmount()


def test_hidden_entries(account, emulator, mounter):
    """Trashed entries and files without a completed revision are not shown."""
    emulator.seed([{"path": "h/live", "content": "x"},
                   {"path": "h/trashed", "content": "x", "deleted": True},
                   {"path": "h/uploading", "state": "INCOMPLETE", "size": 100, "received": 10}],
                  user=account.user)
    m = mounter(account)
    assert os.listdir(os.path.join(m.path, "h")) == ["live"]
    assert not os.path.exists(os.path.join(m.path, "h", "trashed"))
    m.unmount()


def test_long_name(account, mounter):
    m = mounter(account)
    with pytest.raises(OSError) as e:
        os.stat(os.path.join(m.path, "x" * 256))
    assert e.value.errno == 36  # ENAMETOOLONG
    # 255 UTF-16 units is fine (and absent).
    assert not os.path.exists(os.path.join(m.path, "x" * 255))
    m.unmount()


def test_faults_make_reads_slower_not_wrong(account, emulator, mounter):
    emulator.seed([{"path": "f1", "size": 6 * MiB}, {"path": "f2", "size": 3 * MiB}],
                  user=account.user)
    tree = {e["path"]: e for e in emulator.tree(account.user)}
    m = mounter(account)
    emulator.set_knobs(reset_rate=0.3, reset_kinds="download", error_rate=0.3,
                       error_kinds="download", error_status=503, truncate_rate=0.2,
                       truncate_kinds="download")
    try:
        for name in ("f1", "f2"):
            assert md5_file(os.path.join(m.path, name)) == tree[name]["md5"]
        faults = emulator.stats()["faults"]
        assert faults["reset"] + faults["error"] + faults["truncate"] > 0
    finally:
        emulator.reset_knobs()
    m.unmount()


def test_outage_during_read(account, emulator, mounter):
    """A 10 s outage in the middle of a read: the read waits, then is right."""
    emulator.seed([{"path": "f", "size": 8 * MiB}], user=account.user)
    tree = {e["path"]: e for e in emulator.tree(account.user)}
    m = mounter(account)
    emulator.set_knobs(bandwidth=2 * MiB, bandwidth_kinds="download")
    result, done = {}, [0]

    def reader():
        result["md5"] = md5_file(os.path.join(m.path, "f"), chunk=MiB, done=done)
    t = threading.Thread(target=reader)
    t.start()
    wait_for(lambda: done[0] >= 2 * MiB, 60, "the read to be 2 MiB in")
    emulator.set_knobs(outage=True)
    time.sleep(10)                      # not a wait: the outage lasts 10 s (the scenario)
    emulator.set_knobs(outage=False)
    t.join(120)
    emulator.reset_knobs()
    assert not t.is_alive()
    assert result.get("md5") == tree["f"]["md5"]
    m.unmount()


def test_second_daemon_on_same_cache_is_refused(account, mounter, tmp_path):
    m = mounter(account)
    other = tmp_path / "other"
    other.mkdir()
    p = subprocess.run([BIN, "-f", "-o", "account=" + account.name, str(other)],
                       env=account.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "is in use by another jottafs (pid %d)" % m.proc.pid in p.stderr, p.stderr
    assert not os.path.ismount(str(other))
    m.unmount()


def test_bad_remote_path_fails_before_mounting(account, mounter, tmp_path):
    with pytest.raises(DaemonFailed) as e:
        mounter(account, remote="Jotta/Archive:/no/such/dir")
    assert "does not exist" in str(e.value)
    with pytest.raises(DaemonFailed) as e:
        mounter(account, remote="Jotta/NoSuchMountpoint")
    assert "no mountpoint" in str(e.value)


def test_sub_path_mount(account, emulator, mounter):
    emulator.seed([{"path": "top/sub dir/f", "content": "in sub"},
                   {"path": "top/other", "content": "not shown"}], user=account.user)
    m = mounter(account, remote="Jotta/Archive:/top/sub dir")
    assert os.listdir(m.path) == ["f"]
    with open(os.path.join(m.path, "f")) as f:
        assert f.read() == "in sub"
    m.unmount()


def test_writes_refused_when_read_only(account, mounter):
    m = mounter(account, options=["ro"])
    with pytest.raises(OSError) as e:
        open(os.path.join(m.path, "new"), "w")
    assert e.value.errno == 30  # EROFS
    m.unmount()


def test_special_files_refused(account, mounter):
    m = mounter(account)
    for fn in (lambda: os.symlink("x", os.path.join(m.path, "l")),
               lambda: os.mkfifo(os.path.join(m.path, "p"))):
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno in (1, 30)  # EPERM (EROFS before the write path)
    m.unmount()


def test_dead_login_serves_cache_read_only(account, emulator, mounter):
    """The refresh token is refused (spent by someone else): the mount says
    'log in again' once and keeps serving what it has cached, read-only."""
    import json
    import urllib.parse
    emulator.seed([{"path": "d/f", "content": "cached content"}], user=account.user)
    m = mounter(account, options=["dir_cache_time=1"], allow_errors=True)
    with open(os.path.join(m.path, "d", "f")) as f:
        assert f.read() == "cached content"
    acc_file = os.path.join(str(account.config_home), "jottafs", account.name + ".json")
    with open(acc_file) as f:
        data = json.load(f)
    form = urllib.parse.urlencode({"client_id": "jottacli", "grant_type": "refresh_token",
                                   "refresh_token": data["refresh_token"]}).encode()
    status, _, _ = emulator.request("POST", emulator.token_url, body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    emulator.expire_tokens(account.user)
    # not synchronisation: dir_cache_time (1 s) must pass so that the listing
    # below needs the (dead) login; nothing to observe without a request
    time.sleep(1.5)
    assert os.listdir(os.path.join(m.path, "d")) == ["f"]
    with open(os.path.join(m.path, "d", "f")) as f:
        assert f.read() == "cached content"
    with pytest.raises(OSError) as e:
        open(os.path.join(m.path, "d", "new"), "w")
    assert e.value.errno == 30              # EROFS
    assert os.listdir(os.path.join(m.path, "d")) == ["f"]
    out = m.unmount()
    assert out.count("log in again") == 1, out


def test_non_empty_mount_dir_is_refused_unless_nonempty(account, emulator, mounter, tmp_path):
    """Issue 7 item 7: mounting would hide the directory's files."""
    emulator.seed([{"path": "remote.txt", "content": "remote"}], user=account.user)
    d = tmp_path / "full"
    d.mkdir()
    (d / "local.txt").write_text("local")
    p = subprocess.run([BIN, "-f", "-o", "account=" + account.name, str(d)],
                       env=account.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "is not empty" in p.stderr and "nonempty" in p.stderr, p.stderr
    assert not os.path.ismount(str(d))
    m = mounter(account, path=d, options=["nonempty"])
    assert os.listdir(m.path) == ["remote.txt"]
    m.unmount()
    assert (d / "local.txt").read_text() == "local"


def test_second_jottafs_on_a_jottafs_mount_is_refused(account, mounter, tmp_path):
    """Issue 7 item 7: another cache_dir does not make stacking right."""
    m = mounter(account)
    for opts in (["cache_dir=" + str(tmp_path / "other-cache")],
                 ["cache_dir=" + str(tmp_path / "other-cache"), "nonempty"]):
        p = subprocess.run([BIN, "-f", "-o", ",".join(["account=" + account.name] + opts),
                            m.path], env=account.env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 1
        assert "already mounted" in p.stderr, p.stderr
    with open("/proc/self/mountinfo") as f:
        assert sum(1 for line in f if line.split()[4] == m.path) == 1
    m.unmount()


def test_mount_options_that_cannot_work_are_refused(account, emulator, mounter, tmp_path):
    """Issue 7 item 8: refused before mounting with a reason, never a dead
    session after it; max_read works."""
    emulator.seed([{"path": "f.bin", "size": 300000, "fill": "random"}], user=account.user)
    for opt in ("blkdev", "blksize=4096", "relatime", "nodiratime", "strictatime",
                "lazytime", "max_read=100"):
        d = tmp_path / ("d-" + opt.replace("=", "-"))
        d.mkdir()
        p = subprocess.run([BIN, "-o", "account=%s,%s" % (account.name, opt), str(d)],
                           env=account.env, capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, (opt, p.stderr)
        assert opt.split("=")[0] in p.stderr, p.stderr
        assert not os.path.ismount(str(d))
    m = mounter(account, options=["max_read=65536"])
    data = read_file(os.path.join(m.path, "f.bin"))
    assert data == emulator.content("f.bin", user=account.user)
    m.unmount()


def test_special_mountpoints_are_read_only_and_trash_is_refused(account, emulator, mounter,
                                                                 tmp_path):
    """Issue 7 item 6: Jotta/Shared, Latest and Links are not ordinary trees:
    mounted read-only (EROFS at once, never lost+found after a close that
    succeeded); Jotta/Trash is the view of deleted items and is refused."""
    import errno
    for mp in ("Shared", "Latest", "Links"):
        emulator.seed([{"path": "in.txt", "content": mp}], user=account.user, mountpoint=mp)
        m = mounter(account, remote="Jotta/" + mp,
                    options=["cache_dir=" + str(tmp_path / ("c-" + mp))])
        assert read_file(os.path.join(m.path, "in.txt")) == mp.encode()
        for op in (lambda: open(os.path.join(m.path, "new.txt"), "w"),
                   lambda: os.mkdir(os.path.join(m.path, "d")),
                   lambda: os.unlink(os.path.join(m.path, "in.txt")),
                   lambda: open(os.path.join(m.path, "in.txt"), "r+")):
            with pytest.raises(OSError) as e:
                op()
            assert e.value.errno == errno.EROFS, (mp, e.value)
        m.unmount()
        assert "new.txt" not in json.dumps(emulator.tree(user=account.user, mountpoint=mp))
    for args in (["Jotta/Trash"], ["-o", "mountpoint=trash"]):
        d = tmp_path / ("t%d" % len(args))
        d.mkdir()
        p = subprocess.run([BIN, "-f", "-o", "account=" + account.name] + args + [str(d)],
                           env=account.env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2     # a usage error
        assert "cannot be mounted" in p.stderr and "trash" in p.stderr, p.stderr
        assert not os.path.ismount(str(d))
