"""Metadata round trips (issue 9, item 6): what the index already knows costs
no request.

- A lookup of a name that does not exist, in a folder whose listing is fresh
  (listed moments ago, or made by this mount), is answered from the index.
- A rename of a new file whose upload has not started is a change of its
  journal record's path: no move, no stat, nothing on the service until the
  upload runs, under the new name.
- So the temp-file + rename pattern (rsync's .name.XXXXXX, git's index.lock
  and tmp_obj_*, an editor's save) uploads each file once, under its final
  name — checked with the real rsync and git in the mount.

Every test counts the emulator's requests; the rename tests run with latency
on allocate and upload, so that an upload is still pending when the rename
comes and a transfer that did start is slow.
"""
import errno
import os
import shutil
import subprocess

from helpers import (encode_path, errno_of, knobs, live, md5_bytes, md5_file, read_file,
                     wait_for, wait_idle, write_file)


def J(m, *parts):
    return os.path.join(m.path, *parts)


def requests(emu):
    """Request counts by kind, without the zeros."""
    return {k: v for k, v in emu.stats()["requests"].items() if v}


def commands(emu):
    return {k: v for k, v in emu.stats()["commands"].items() if v}


def test_negative_lookup_in_fresh_folder_sends_nothing(account, emulator, mounter):
    emulator.seed([{"path": "server/a.txt", "content": "a"}], user=account.user)
    m = mounter(account)
    assert os.listdir(J(m, "server")) == ["a.txt"]      # listed now: fresh
    os.mkdir(J(m, "made"))                              # made here: known empty
    write_file(J(m, "made", "here.txt"), b"here")
    emulator.reset_stats()
    for d in ("", "server", "made"):
        for i in range(50):
            assert errno_of(os.stat, J(m, d, "missing-%d.txt" % i)) == errno.ENOENT
    assert os.path.exists(J(m, "server", "a.txt"))
    assert os.path.exists(J(m, "made", "here.txt"))
    assert requests(emulator) == {}, "negative lookups sent requests"
    m.unmount()


def test_rename_of_pending_upload_sends_no_request(account, emulator, mounter):
    m = mounter(account)
    os.mkdir(J(m, "dst"))
    data = os.urandom(200000)
    with knobs(emulator, latency_ms=300, latency_kinds="upload,allocate"):
        emulator.reset_stats()
        write_file(J(m, "new.tmp"), data)
        os.rename(J(m, "new.tmp"), J(m, "new.bin"))
        os.rename(J(m, "new.bin"), J(m, "dst", "final.bin"))
        assert requests(emulator) == {}, "the renames of a pending upload sent requests"
        assert read_file(J(m, "dst", "final.bin")) == data
        wait_idle(m)
        r = requests(emulator)
        assert r == {"allocate": 1, "upload": 1}, r
    t = live(emulator, account.user)
    assert sorted(t) == ["dst", "dst/final.bin"], sorted(t)
    assert t["dst/final.bin"]["md5"] == md5_bytes(data)
    m.unmount()


def test_rename_of_running_upload_still_moves(account, emulator, mounter):
    """Once a transfer ran at the old name, the rename tells the service."""
    m = mounter(account)
    data = os.urandom(100000)
    with knobs(emulator, latency_ms=1500, latency_kinds="upload"):
        emulator.reset_stats()
        write_file(J(m, "slow.tmp"), data)
        # the allocate has been answered: the transfer runs at the old name
        wait_for(lambda: emulator.stats()["requests"]["allocate"] > 0, 30,
                 "the upload to start")
        os.rename(J(m, "slow.tmp"), J(m, "slow.bin"))
        wait_idle(m)
    assert commands(emulator).get("mv", 0) == 1
    t = live(emulator, account.user)
    assert sorted(t) == ["slow.bin"], sorted(t)
    assert t["slow.bin"]["md5"] == md5_bytes(data)
    m.unmount()


def test_temp_file_and_rename_uploads_once(account, emulator, mounter):
    m = mounter(account)
    write_file(J(m, "doc.txt"), b"version 1")
    wait_idle(m)
    files = {"f%02d.txt" % i: os.urandom(5000 + i) for i in range(20)}
    with knobs(emulator, latency_ms=100, latency_kinds="upload,allocate"):
        emulator.reset_stats()
        for name, data in files.items():
            write_file(J(m, "." + name + ".XyZ123"), data)
            os.rename(J(m, "." + name + ".XyZ123"), J(m, name))
        # an editor's save: a temp file renamed over the original on the service
        write_file(J(m, "doc.txt.swp"), b"version 2")
        os.rename(J(m, "doc.txt.swp"), J(m, "doc.txt"))
        wait_idle(m)
    r = requests(emulator)
    assert r.get("allocate") == len(files) + 1, r
    assert r.get("upload") == len(files) + 1, r
    assert commands(emulator).get("mv", 0) == 0
    t = live(emulator, account.user)
    assert sorted(t) == sorted(list(files) + ["doc.txt"]), sorted(t)
    for name, data in files.items():
        assert t[name]["md5"] == md5_bytes(data), name
    assert t["doc.txt"]["md5"] == md5_bytes(b"version 2")
    m.unmount()


def _server_matches(emulator, user, root, rel_root):
    """Every file below local @root is on the service below @rel_root with its
    MD5, and the service holds no other file there."""
    t = live(emulator, user)
    want = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.join(rel_root, os.path.relpath(p, root))
            want[encode_path(rel)] = md5_file(p)
    have = {p: x["md5"] for p, x in t.items()
            if x["type"] == "file" and p.startswith(encode_path(rel_root) + "/")}
    assert have == want, (sorted(set(have) ^ set(want))[:20],
                          [p for p in want if have.get(p) != want[p]][:20])


def test_rsync_temp_and_rename_ends_right(account, emulator, mounter, tmp_path):
    if shutil.which("rsync") is None:
        raise AssertionError("rsync is not installed (apt-get install rsync); needed here")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(15):
        (src / ("file%d.dat" % i)).write_bytes(os.urandom(3000 + i))
        (src / "sub" / ("inner%d.txt" % i)).write_bytes(b"inner %d\n" % i)
    m = mounter(account)
    with knobs(emulator, latency_ms=50, latency_kinds="upload,allocate"):
        emulator.reset_stats()
        subprocess.run(["rsync", "-a", str(src) + "/", J(m, "copy") + "/"], check=True,
                       timeout=300)
        wait_idle(m)
    r = requests(emulator)
    assert r.get("allocate") == 30 and r.get("upload") == 30, r
    assert commands(emulator).get("mv", 0) == 0
    m.unmount()
    _server_matches(emulator, account.user, str(src), "copy")


def test_git_add_and_commit_end_right(account, emulator, mounter, tmp_path):
    if shutil.which("git") is None:
        raise AssertionError("git is not installed (apt-get install git); needed here")
    m = mounter(account)
    repo = J(m, "repo")
    git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"]
    with knobs(emulator, latency_ms=50, latency_kinds="upload,allocate"):
        subprocess.run(["git", "init", "-q", repo], check=True, timeout=120)
        for i in range(40):
            write_file(os.path.join(repo, "w%02d.txt" % i), b"work file %d\n" % i)
        emulator.reset_stats()
        subprocess.run(git + ["add", "-A"], check=True, timeout=300)
        subprocess.run(git + ["commit", "-q", "-m", "first"], check=True, timeout=300)
        wait_idle(m)
    # git's temp objects and index.lock were renamed before their upload
    # ran: nothing was moved, nothing was answered 404
    assert commands(emulator).get("mv", 0) == 0
    assert emulator.stats()["statuses"].get("404", 0) == 0
    p = subprocess.run(git + ["fsck", "--strict"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    local = tmp_path / "local"
    shutil.copytree(repo, local)
    m.unmount()
    names = [os.path.relpath(os.path.join(d, n), local)
             for d, _, ns in os.walk(local) for n in ns]
    assert not [n for n in names if "tmp_obj" in n or n.endswith(".lock")], names
    _server_matches(emulator, account.user, str(local), "repo")
