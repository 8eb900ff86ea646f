"""The control directory MOUNT/.jottacloud (issue 11): status and
status.json, `jottafs status` and its exit codes, the state xattrs, old
versions under versions/PATH/ and the trash under trash/ — browse, read,
restore by mv, delete for good, empty — all with ls, cat, mv, cp, rm.

Checked against the emulator's view of the account (emulator.tree)."""
import json
import os
import subprocess

import pytest

from helpers import BIN, ctl, knobs, live, md5_bytes, status, tree, wait_for

MiB = 1 << 20


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path, data, sync=True):
    with open(path, "wb") as f:
        f.write(data)
    if sync:
        fsync_path(path)


def jottafs_status(account, *args):
    return subprocess.run([BIN, "status"] + [str(a) for a in args], env=account.env,
                          capture_output=True, text=True, timeout=60)


def state(path):
    return os.getxattr(path, "user.jottacloud.state").decode()


def test_control_dir_reachable_not_listed(account, mounter, emulator):
    m = mounter(account)
    assert os.listdir(m.path) == []
    assert sorted(os.listdir(ctl(m))) == ["status", "status.json", "trash", "versions"]
    assert os.path.isdir(ctl(m))
    # Nothing in it can be created, and it is never uploaded.
    with pytest.raises(OSError):
        open(ctl(m, "new"), "w")
    with pytest.raises(OSError):
        os.mkdir(os.path.join(m.path, ".jottacloud"))
    os.mkdir(os.path.join(m.path, "dir"))
    with pytest.raises(OSError):
        os.rename(os.path.join(m.path, "dir"), os.path.join(m.path, ".jottacloud"))
    with pytest.raises(OSError):
        os.rename(ctl(m), os.path.join(m.path, "elsewhere"))
    m.unmount()
    assert not [p for p in tree(emulator, account.user) if ".jottacloud" in p or "elsewhere" in p]


def test_control_dir_renamed_by_option(account, mounter, emulator):
    m = mounter(account, options=["control_dir=.jc"])
    assert os.path.isfile(os.path.join(m.path, ".jc", "status"))
    assert not os.path.exists(ctl(m))
    r = jottafs_status(account, m.path)
    assert r.returncode == 0, r.stderr
    assert "pending uploads: 0 files" in r.stdout
    m.unmount()


def test_status_during_and_after_uploads(account, mounter, emulator):
    m = mounter(account)
    with knobs(emulator, bandwidth=2 * MiB, bandwidth_kinds="upload"):
        data = os.urandom(8 * MiB)
        path = os.path.join(m.path, "big.bin")
        write(path, data, sync=False)
        # Pending right after close, then a transfer with progress.
        st = status(m)
        assert st["pending"]["files"] == 1 and st["pending"]["bytes"] == len(data), st
        assert state(path) in ("pending",) or state(path).startswith("uploading"), state(path)
        r = jottafs_status(account, m.path)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        seen = wait_for(lambda: [t for t in status(m)["transfers"]
                                 if t["path"] == "big.bin" and 0 < t["done"] < t["total"]],
                        60, "a transfer in progress in status.json")
        assert seen[0]["total"] == len(data)
        text = open(ctl(m, "status")).read()
        assert "uploading big.bin:" in text, text
        s = wait_for(lambda: state(path) if state(path).startswith("uploading ") and
                     state(path) != "uploading 0/%d" % len(data) else None,
                     60, "the state xattr showing upload progress")
        done, total = map(int, s.split()[1].split("/"))
        assert 0 < done <= total == len(data)
        fsync_path(path)
    st = status(m)
    assert st["pending"] == {"files": 0, "bytes": 0, "deletes": 0, "mkdirs": 0} and \
        st["transfers"] == [], st
    assert state(path) == "synced"
    # The revision and the server time are there at once, not after revalidation.
    assert os.getxattr(path, "user.jottacloud.revision") == b"1"
    srv = live(emulator, account.user)["big.bin"]
    assert srv["md5"] == md5_bytes(data)
    assert os.getxattr(path, "user.jottacloud.updated")
    assert "user.jottacloud.state" in os.listxattr(path)
    r = jottafs_status(account, m.path, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pending"]["files"] == 0
    # Every mount of the user (other tests' mounts may be listed too).
    r = jottafs_status(account)
    assert "jottafs Jotta/Archive on %s\n" % m.path in r.stdout, (r.stdout, r.stderr)
    m.unmount()


def test_status_during_outage(account, mounter, emulator):
    m = mounter(account)
    path = os.path.join(m.path, "a.txt")
    assert os.listdir(m.path) == []     # listed: the create needs no request
    with knobs(emulator, outage=True):
        write(path, b"written while the service is away\n", sync=False)
        st = status(m)
        assert st["pending"]["files"] == 1, st
        assert state(path) in ("pending",) or state(path).startswith("uploading")
        assert jottafs_status(account, m.path).returncode == 3
        # The upload's attempts find the outage: the mount goes offline.
        st = wait_for(lambda: status(m)["connectivity"]["state"] == "offline" and status(m),
                      60, "connectivity offline in status.json")
        assert st["connectivity"]["since"] and st["connectivity"]["last_error"], st
        assert "connectivity:    offline since " in open(ctl(m, "status")).read()
    fsync_path(path)
    assert status(m)["connectivity"]["state"] == "online"
    assert status(m)["pending"]["files"] == 0
    assert jottafs_status(account, m.path).returncode == 0
    m.unmount()


def test_status_exit_codes(account, mounter, tmp_path, emulator):
    r = jottafs_status(account, tmp_path)
    assert r.returncode == 1 and "not a jottafs mount" in r.stderr, r
    assert jottafs_status(account, "--bogus").returncode == 2
    # A given-up upload (quota full) is exit 4 and state "failed".
    m = mounter(account, allow_errors=True)
    path = os.path.join(m.path, "f.bin")
    write(path, b"small\n")
    with knobs(emulator, capacity=1):
        with open(path, "ab") as f:
            f.write(os.urandom(64 * 1024))
        with pytest.raises(OSError):
            fsync_path(path)
        r = jottafs_status(account, m.path)
        assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
        assert status(m)["lost_found"]["files"] == 1
        # The name shows the service's version again, marked failed.
        assert wait_for(lambda: os.path.exists(path) and state(path) == "failed", 30,
                        "f.bin marked failed (%s, %s)" % (
                            os.listdir(m.path), os.path.exists(path) and state(path)))
    m.unmount()


def test_versions_after_two_rewrites(account, mounter, emulator):
    m = mounter(account)
    os.mkdir(os.path.join(m.path, "docs"))
    path = os.path.join(m.path, "docs", "notes.txt")
    contents = [b"first\n", b"second, longer\n", b"third and the longest of all\n"]
    for i, data in enumerate(contents):
        write(path, data)
        os.utime(path, (1700000000 + i * 100, 1700000000 + i * 100))
        fsync_path(path)
    vdir = ctl(m, "versions", "docs", "notes.txt")
    names = sorted(os.listdir(vdir))
    assert len(names) == 2, names
    for name, data in zip(names, contents[:2]):
        p = os.path.join(vdir, name)
        assert os.stat(p).st_size == len(data)
        assert open(p, "rb").read() == data
    assert names[0].startswith("notes (v1 ") and names[0].endswith(").txt"), names
    # Cached like any content: read again without the kernel's pages, no download.
    before = emulator.stats()["download_bytes"]
    for name, data in zip(names, contents[:2]):
        with open(os.path.join(vdir, name), "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            assert f.read() == data
    assert emulator.stats()["download_bytes"] == before
    # Read-only; cp out restores the old version.
    with pytest.raises(OSError):
        open(os.path.join(vdir, names[0]), "w")
    subprocess.run(["cp", os.path.join(vdir, names[0]), path], check=True)
    fsync_path(path)
    assert open(path, "rb").read() == contents[0]
    assert live(emulator, account.user)["docs/notes.txt"]["md5"] == md5_bytes(contents[0])
    assert sorted(os.listdir(ctl(m, "versions"))) == ["docs"]
    m.unmount()


def test_versions_of_a_file_deleted_and_restored(account, mounter, emulator):
    """The user's story: look at the versions, rm the file, restore it from
    the trash with mv, and at once list its versions again and cp an old one
    back. (The versions folder of the file was still cached by the kernel
    for the deleted node: right after the restore it said ENOENT.)"""
    m = mounter(account)
    path = os.path.join(m.path, "notes.txt")
    for data in (b"draft 1\n", b"draft 2\n", b"draft 3\n"):
        write(path, data)
        fsync_path(path)
    vdir = ctl(m, "versions", "notes.txt")
    assert len(os.listdir(vdir)) == 2
    os.unlink(path)
    assert not os.path.exists(vdir)
    os.rename(ctl(m, "trash", "notes.txt"), path)
    assert open(path, "rb").read() == b"draft 3\n"
    names = sorted(os.listdir(vdir))
    assert len(names) == 2, names
    subprocess.run(["cp", os.path.join(vdir, names[0]), path], check=True)
    fsync_path(path)
    assert open(path, "rb").read() == b"draft 1\n"
    m.unmount()


def test_trash_browse_read_restore_delete_empty(account, mounter, emulator):
    m = mounter(account)
    os.makedirs(os.path.join(m.path, "a", "b"))
    files = {"a/b/one.txt": b"one\n", "a/two.txt": b"two\n" * 1000,
             "three.txt": b"3\n", "a/b/four.txt": b"four\n"}
    for rel, data in files.items():
        write(os.path.join(m.path, rel), data)
    assert os.listdir(ctl(m, "trash")) == []
    for rel in ("a/b/one.txt", "a/two.txt", "three.txt"):
        os.unlink(os.path.join(m.path, rel))
    # At once: the trash view read a moment ago is not reused after a delete.
    assert sorted(os.listdir(ctl(m, "trash"))) == ["a", "three.txt"]
    # Browse at the relative paths, read the content.
    out = subprocess.run(["find", ctl(m, "trash"), "-type", "f"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert sorted(os.path.relpath(p, ctl(m, "trash")) for p in out) == \
        ["a/b/one.txt", "a/two.txt", "three.txt"]
    assert open(ctl(m, "trash", "a", "two.txt"), "rb").read() == files["a/two.txt"]
    assert os.stat(ctl(m, "trash", "a", "two.txt")).st_size == len(files["a/two.txt"])
    # Restore by mv: in place, and under another name.
    os.rename(ctl(m, "trash", "a", "b", "one.txt"), os.path.join(m.path, "a", "b", "one.txt"))
    assert open(os.path.join(m.path, "a", "b", "one.txt"), "rb").read() == b"one\n"
    os.rename(ctl(m, "trash", "three.txt"), os.path.join(m.path, "a", "drei.txt"))
    assert open(os.path.join(m.path, "a", "drei.txt"), "rb").read() == b"3\n"
    srv = live(emulator, account.user)
    assert srv["a/b/one.txt"]["md5"] == md5_bytes(b"one\n")
    assert srv["a/drei.txt"]["md5"] == md5_bytes(b"3\n")
    assert not os.path.exists(ctl(m, "trash", "three.txt"))
    # rm deletes for good.
    os.unlink(ctl(m, "trash", "a", "two.txt"))
    assert "a/two.txt" not in tree(emulator, account.user)
    # A trashed folder: browse into it, then empty the trash with rm -rf.
    subprocess.run(["rm", "-rf", os.path.join(m.path, "a", "b")], check=True)
    assert open(ctl(m, "trash", "a", "b", "four.txt"), "rb").read() == b"four\n"
    subprocess.run("rm -rf %s/*" % ctl(m, "trash"), shell=True, check=True)
    assert os.listdir(ctl(m, "trash")) == []
    left = {p for p, x in tree(emulator, account.user).items() if x["deleted"] is not None}
    assert left == set(), left
    m.unmount()


def test_trash_restore_folder(account, mounter, emulator):
    m = mounter(account)
    os.makedirs(os.path.join(m.path, "proj", "src"))
    write(os.path.join(m.path, "proj", "src", "main.c"), b"int main;\n")
    write(os.path.join(m.path, "proj", "README"), b"read me\n")
    subprocess.run(["rm", "-rf", os.path.join(m.path, "proj")], check=True)
    assert not os.path.exists(os.path.join(m.path, "proj"))
    subprocess.run(["mv", ctl(m, "trash", "proj"), os.path.join(m.path, "proj")], check=True)
    assert open(os.path.join(m.path, "proj", "src", "main.c"), "rb").read() == b"int main;\n"
    assert open(os.path.join(m.path, "proj", "README"), "rb").read() == b"read me\n"
    srv = live(emulator, account.user)
    assert srv["proj/src/main.c"]["md5"] == md5_bytes(b"int main;\n")
    assert os.listdir(ctl(m, "trash")) == []
    m.unmount()


def test_conflict_in_status_and_state(account, mounter, emulator):
    emulator.seed([{"path": "d/doc.txt", "content": "server v1\n"}], user=account.user)
    m = mounter(account, allow_errors=True)
    path = os.path.join(m.path, "d", "doc.txt")
    assert open(path, "rb").read() == b"server v1\n"
    write(path, b"local rewrite\n", sync=False)     # the upload waits 2 s (write-back)
    emulator.seed([{"path": "d/doc.txt", "content": "server v2\n"}], user=account.user)
    st = wait_for(lambda: status(m)["conflicts"]["count"] == 1 and status(m), 60,
                  "a conflict in status.json")
    (copy,) = st["conflicts"]["paths"]
    assert copy.startswith("d/doc (conflict ") and copy.endswith(").txt"), copy
    assert "conflicts made:  1\n  %s\n" % copy in open(ctl(m, "status")).read()
    cpath = os.path.join(m.path, copy)
    assert wait_for(lambda: os.path.exists(cpath), 30, "the conflict copy in the mount")
    assert state(cpath) == "conflict"
    assert open(cpath, "rb").read() == b"local rewrite\n"
    m.unmount()


def test_trash_of_a_sub_path_mount_without_dedup(account, mounter, emulator):
    """A mount of Jotta/Archive:/sub shows only the trash below /sub, at paths
    relative to it; restoring elsewhere works when the service does not
    deduplicate across paths (back in place, then moved)."""
    m0 = mounter(account)
    os.makedirs(os.path.join(m0.path, "sub", "in"))
    write(os.path.join(m0.path, "outside.txt"), b"outside\n")
    write(os.path.join(m0.path, "sub", "in", "x.txt"), b"inside\n")
    os.unlink(os.path.join(m0.path, "outside.txt"))
    m0.unmount()
    m = mounter(account, remote="Jotta/Archive:/sub",
                options=["cache_dir=" + os.path.join(str(account.home), "subcache")])
    os.unlink(os.path.join(m.path, "in", "x.txt"))
    out = subprocess.run(["find", ctl(m, "trash")], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert sorted(os.path.relpath(p, ctl(m, "trash")) for p in out if p) == \
        [".", "in", "in/x.txt"]
    with knobs(emulator, dedup="off"):
        os.rename(ctl(m, "trash", "in", "x.txt"), os.path.join(m.path, "y.txt"))
    assert open(os.path.join(m.path, "y.txt"), "rb").read() == b"inside\n"
    srv = tree(emulator, account.user)
    assert srv["sub/y.txt"]["deleted"] is None and "sub/in/x.txt" not in srv, sorted(srv)
    m.unmount()


def test_server_folder_of_the_same_name_is_shadowed(account, mounter, emulator):
    emulator.seed([{"path": ".jottacloud/theirs.txt", "content": "x"},
                   {"path": "plain.txt", "content": "y"}], user=account.user)
    m = mounter(account)
    assert os.listdir(m.path) == ["plain.txt"]
    assert "theirs.txt" not in os.listdir(ctl(m))
    assert "status" in os.listdir(ctl(m))
    out = m.unmount()
    assert "hidden by the control directory" in out, out
    # With another name for the control directory, the folder is reachable.
    m = mounter(account, options=["control_dir=.jc"])
    assert sorted(os.listdir(m.path)) == [".jottacloud", "plain.txt"]
    assert os.listdir(ctl(m)) == ["theirs.txt"]
    m.unmount()


@pytest.mark.parametrize("dedup", ["account", "off"])
def test_trash_restore_one_file_of_a_trashed_folder(account, mounter, emulator, dedup):
    m = mounter(account)
    os.makedirs(os.path.join(m.path, "old", "deep"))
    write(os.path.join(m.path, "old", "deep", "keep.txt"), b"keep me\n")
    write(os.path.join(m.path, "old", "other.txt"), b"other\n")
    subprocess.run(["rm", "-rf", os.path.join(m.path, "old")], check=True)
    with knobs(emulator, dedup=dedup):
        os.rename(ctl(m, "trash", "old", "deep", "keep.txt"), os.path.join(m.path, "keep.txt"))
    assert open(os.path.join(m.path, "keep.txt"), "rb").read() == b"keep me\n"
    assert live(emulator, account.user)["keep.txt"]["md5"] == md5_bytes(b"keep me\n")
    # The rest of the folder stays in the trash.
    assert open(ctl(m, "trash", "old", "other.txt"), "rb").read() == b"other\n"
    assert not os.path.exists(ctl(m, "trash", "old", "deep", "keep.txt"))
    m.unmount()
