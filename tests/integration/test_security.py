"""Issue 14 items 1 and 6: a careless admin or a curious local user gets nothing.

- The cache directory (and the directories above it) must be ours alone: one
  another user owns, one others may write to, or one with a planted `lock`
  symlink is refused before anything is written, with a message that names the
  path, what was found and what to do; the file a symlink points to is unchanged.
- index.db, journal.db (and their -wal/-shm) are 0600; the cache directory and
  its data directory 0700; a cached content file replaced by a symlink is never
  read through.
- The daemon is not dumpable by default (no core dump of a process holding
  tokens); -o coredump and -d make it dumpable.

Root is needed to make a directory another user owns (chown); these tests
create a system user for that when `useradd` exists (removed again at the
end), else they use a bare numeric uid.
"""
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from helpers import BIN, Mount, wait_for

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown to another user")
OTHER_NAME = "jottafs-sectest"


@pytest.fixture(scope="module")
def other_uid():
    """The uid of a second local user (created here if need be and possible)."""
    if os.geteuid() != 0:
        yield None
        return
    created = False
    try:
        uid = pwd.getpwnam(OTHER_NAME).pw_uid
    except KeyError:
        uid = None
        if shutil.which("useradd"):
            p = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                                "/usr/sbin/nologin", OTHER_NAME], capture_output=True, text=True)
            if p.returncode == 0:
                created = True
                uid = pwd.getpwnam(OTHER_NAME).pw_uid
        if uid is None:
            uid = 4242      # a numeric uid nobody uses: chown accepts it
    yield uid
    if created:
        subprocess.run(["userdel", OTHER_NAME], capture_output=True)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def cache_dir_of(account):
    return os.path.join(str(account.cache_home), "jottafs", account.name, "Jotta", "Archive")


def refused_mount(account, tmp_path, cache_dir, name="mnt"):
    """Run a mount that must fail before mounting; its stderr."""
    mnt = tmp_path / name
    mnt.mkdir(exist_ok=True)
    try:
        p = subprocess.run([BIN, "-f", "-o", "account=%s,cache_dir=%s" % (account.name,
                                                                          cache_dir),
                            str(mnt)], env=account.env, capture_output=True, text=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        p = None
    finally:
        mounted = os.path.ismount(str(mnt))
        if mounted:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
    assert p is not None and not mounted, "the mount was not refused"
    assert p.returncode == 1, "exit %d\n%s" % (p.returncode, p.stderr)
    return p.stderr


def precious_file(tmp_path):
    """A root-owned file an attacker would like jottafs to overwrite."""
    f = tmp_path / "precious"
    f.write_text("root's data\n")
    os.chmod(f, 0o644)
    return f


def planted_link(tmp_path, name):
    """A cache directory of ours (0700) whose @name is a symlink to a
    precious file: (the precious file, the cache directory)."""
    precious = precious_file(tmp_path)
    jc = tmp_path / "jc"
    jc.mkdir(mode=0o700)
    os.symlink(str(precious), str(jc / name))
    return precious, jc


@ROOT_ONLY
def test_cache_dir_of_another_user_is_refused(account, tmp_path, other_uid):
    """The issue's attack: another user made the cache directory first (mode
    777) and planted `lock` -> a root-owned file. Refused; nothing written."""
    precious = precious_file(tmp_path)
    x = tmp_path / "x"
    x.mkdir(mode=0o755)
    jc = x / "jc"
    jc.mkdir()
    os.chmod(jc, 0o777)
    os.symlink(str(precious), str(jc / "lock"))
    os.chown(jc, other_uid, other_uid)
    err = refused_mount(account, tmp_path, jc)
    assert "cannot use the cache directory: '%s' belongs to uid %d" % (jc, other_uid) in err, err
    assert "(mode 0777), not to uid 0" in err, err
    assert "remove it, or use a directory of your own" in err, err
    assert precious.read_text() == "root's data\n"
    assert sorted(os.listdir(jc)) == ["lock"]
    # The same directory at mode 700, still theirs: refused the same way.
    os.chmod(jc, 0o700)
    err = refused_mount(account, tmp_path, jc)
    assert "belongs to uid %d" % other_uid in err and "(mode 0700), not to uid 0" in err, err
    assert precious.read_text() == "root's data\n"


@ROOT_ONLY
def test_cache_dir_below_another_users_directory_is_refused(account, tmp_path, other_uid,
                                                           mounter):
    """Even a cache directory we create is unsafe below a directory another
    user owns: they could rename it away and put their own in its place."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, other_uid, other_uid)
    jc = theirs / "jc"
    err = refused_mount(account, tmp_path, jc)
    assert "'%s', above '%s', belongs to uid %d" % (theirs, jc, other_uid) in err, err
    assert not (jc / "index.db").exists()
    # Writable by others without the sticky bit (ours): refused too.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    err = refused_mount(account, tmp_path, open_dir / "jc")
    assert "'%s', above" % open_dir in err and "without the sticky bit (mode 0777)" in err, err
    # ... with the sticky bit (like /tmp) it is fine: nobody can rename our entries.
    os.chmod(open_dir, 0o1777)
    mounter(account, options=["cache_dir=%s" % (open_dir / "jc")]).unmount()
    assert mode(open_dir / "jc") == 0o700


def test_cache_dir_writable_by_others_is_refused(account, tmp_path):
    """Our own directory at mode 777: someone may have planted things in it;
    refused (not silently tightened), and left as it was."""
    jc = tmp_path / "jc"
    jc.mkdir()
    os.chmod(jc, 0o777)
    err = refused_mount(account, tmp_path, jc)
    assert "'%s' is writable by group and others (mode 0777)" % jc in err, err
    assert "run 'chmod 700 %s'" % jc in err, err
    assert mode(jc) == 0o777
    assert os.listdir(jc) == []
    os.chmod(jc, 0o775)
    err = refused_mount(account, tmp_path, jc)
    assert "writable by group (mode 0775)" in err, err


def test_planted_lock_symlink_is_refused(account, tmp_path):
    """A cache directory of ours (0700) holding a planted `lock` symlink (put
    there while it was open to others): the lock is not opened through it."""
    precious, jc = planted_link(tmp_path, "lock")
    err = refused_mount(account, tmp_path, jc)
    assert "cannot use the cache directory: '%s/lock' is a symbolic link" % jc in err, err
    assert "remove it" in err, err
    assert precious.read_text() == "root's data\n"
    assert mode(precious) == 0o644
    # A hard link to someone else's file is no better (as root the owner
    # check cannot tell: the single-link rule does).
    os.unlink(jc / "lock")
    os.link(str(precious), str(jc / "lock"))
    err = refused_mount(account, tmp_path, jc)
    assert "'%s/lock' is not a plain file of yours" % jc in err, err
    assert precious.read_text() == "root's data\n"


def test_planted_index_symlink_is_refused(account, tmp_path, mounter):
    """index.db as a symlink: refused before SQLite writes anything."""
    precious, jc = planted_link(tmp_path, "index.db")
    err = refused_mount(account, tmp_path, jc)
    assert "'%s/index.db' is a symbolic link" % jc in err, err
    assert precious.read_text() == "root's data\n"


def test_config_dir_writable_by_others_is_refused(account, tmp_path):
    """The directory with the account files follows the same rule: every
    command that reads it refuses, and so does a login into it."""
    conf = account.config_home / "jottafs"
    assert mode(conf) == 0o700 and mode(conf / (account.name + ".json")) == 0o600
    os.chmod(conf, 0o777)
    for args in (["about"], ["devices"]):
        p = account.run(args, check=False)
        assert p.returncode == 1, p.stderr
        assert ("cannot use the configuration directory: '%s' is writable by group and others "
                "(mode 0777)" % conf) in p.stderr, p.stderr
    p = subprocess.run([BIN, "login", "--account", account.name, "-o", account.endpoint_opts()],
                       env=account.env, input=account.emu.login_token(account.user) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "cannot use the configuration directory" in p.stderr, p.stderr
    err = refused_mount(account, tmp_path, tmp_path / "cache")
    assert "cannot use the configuration directory" in err, err
    # Back to 0700, with the account file made a symlink: refused too.
    os.chmod(conf, 0o700)
    f = conf / (account.name + ".json")
    os.rename(f, conf / "elsewhere.json")
    os.symlink("elsewhere.json", f)
    p = account.run(["about"], check=False)
    assert p.returncode == 1, p.stderr
    assert "cannot use the account file: '%s' is a symbolic link" % f in p.stderr, p.stderr


def test_cache_files_are_private(account, mounter):
    """After a mount that wrote and read: the cache directory and data 0700;
    index.db, journal.db, their -wal/-shm and the lock 0600. A database left
    0644 by an older version is made 0600."""
    m = mounter(account)
    with open(os.path.join(m.path, "f.txt"), "w") as f:
        f.write("hello")
    fd = os.open(os.path.join(m.path, "f.txt"), os.O_RDONLY)
    os.fsync(fd)                     # uploaded: the journal has been used
    os.close(fd)
    with open(os.path.join(m.path, "f.txt")) as f:
        assert f.read() == "hello"
    cd = cache_dir_of(account)

    def check():
        assert mode(cd) == 0o700
        assert mode(os.path.join(cd, "data")) == 0o700
        names = os.listdir(cd)
        assert "index.db" in names and "journal.db" in names, names
        for n in names:
            if n.startswith(("index.db", "journal.db")) or n == "lock":
                assert mode(os.path.join(cd, n)) == 0o600, (n, oct(mode(os.path.join(cd, n))))
        for n in os.listdir(os.path.join(cd, "data")):
            assert mode(os.path.join(cd, "data", n)) & 0o077 == 0, n
        return names

    names = check()                  # while mounted: the -wal and -shm files exist
    assert "index.db-wal" in names and "journal.db-shm" in names, names
    m.unmount()
    check()
    for n in ("index.db", "journal.db"):
        os.chmod(os.path.join(cd, n), 0o644)
    mounter(account).unmount()
    check()


def test_cached_content_replaced_by_symlink_is_not_read(account, emulator, mounter, tmp_path):
    """The issue's read attack: a cached content file replaced by a symlink to
    a file only root may read (as allow_other would show it to anyone). The
    mount never serves that file's bytes."""
    emulator.seed([{"path": "f", "content": "server bytes"}], user=account.user)
    m = mounter(account)
    with open(os.path.join(m.path, "f")) as f:
        assert f.read() == "server bytes"
    m.unmount()
    data = os.path.join(cache_dir_of(account), "data")
    names = os.listdir(data)
    assert len(names) == 1, names
    secret = tmp_path / "root-only"
    secret.write_text("TOP SECRET!!")       # as long as the content
    os.chmod(secret, 0o600)
    os.unlink(os.path.join(data, names[0]))
    os.symlink(str(secret), os.path.join(data, names[0]))
    m = mounter(account, allow_errors=True)
    # The link is refused (and said so), replaced by a fresh cache file that
    # is fetched from the server again.
    with open(os.path.join(m.path, "f")) as f:
        assert f.read() == "server bytes"
    m.unmount()
    out = m.output()
    assert "data/%s' is a symbolic link" % names[0] in out, out
    assert "TOP SECRET" not in out
    assert secret.read_text() == "TOP SECRET!!"
    assert stat.S_ISREG(os.lstat(os.path.join(data, names[0])).st_mode)


# ---- core dumps (item 6) ------------------------------------------------------------

# How we observe "not dumpable": /proc/PID/exe is guarded by ptrace_may_access
# (PTRACE_MODE_READ). For a caller with the daemon's uid that passes, unless
# the daemon is not dumpable: then it also needs CAP_SYS_PTRACE. So both the
# daemon and the checker run without CAP_SYS_PTRACE (setpriv drops it from the
# bounding set; both must hold the same capabilities, else the capability
# check fails first), and the checker can read the link exactly when the
# daemon is dumpable. As root the /proc/PID ownership does not change (it is
# root either way), hence this observable rather than the file owner.
NO_PTRACE = ["setpriv", "--bounding-set", "-sys_ptrace"]


def _exe_readable(pid):
    p = subprocess.run(NO_PTRACE + ["readlink", "/proc/%d/exe" % pid], capture_output=True,
                       text=True)
    return p.returncode == 0


def _comm(pid):
    """The name of what process @pid runs now (after its last exec)."""
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
@pytest.mark.parametrize("opts,args,dumpable", [
    ((), (), False),
    (("coredump",), (), True),
    ((), ("-d",), True),
], ids=["default", "coredump", "debug"])
def test_not_dumpable_unless_asked(account, tmp_path, opts, args, dumpable):
    # started without CAP_SYS_PTRACE (see above)
    d = Mount(account, tmp_path / "mnt", options=opts, extra_args=args, wrapper=NO_PTRACE,
              allow_errors=True)
    try:
        assert os.listdir(d.path) == []
        # The control: a process of ours started the same way is readable.
        ctl = subprocess.Popen(NO_PTRACE + ["sleep", "30"])
        try:
            wait_for(lambda: _comm(ctl.pid) == "sleep", 20, "the control process to exec sleep")
            assert _exe_readable(ctl.pid)
        finally:
            ctl.kill()
            ctl.wait()
        assert _exe_readable(d.proc.pid) == dumpable
        d.unmount()
    finally:
        d.cleanup()
