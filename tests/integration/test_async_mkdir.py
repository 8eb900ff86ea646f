"""Asynchronous, journalled mkdir (issue 9; cache/deletes.h).

mkdir returns once the folder is in the index and its creation is
journalled (deletes.db); the namespace queue's workers make it on the
service (mkDir=true), unless an upload into it or below it makes it first
(allocate makes missing parents): then no mkDir at all. A chain of pending
folders costs one mkDir of the deepest. rmdir of a folder whose creation was
never sent costs no request; a rename of a pending folder, or of a file into
it, stays correct on the service; listings refreshed from the service do not
hide a pending folder; kill -9 after mkdir returned, offline mkdir and
unmount all end with the folder on the service.
"""
import os
import subprocess

from helpers import (deletes_db_rows, errno_of, knobs, live, md5_bytes, status, wait_for,
                     wait_server, write_file)


def J(m, *parts):
    return os.path.join(m.path, *parts)


def journal_rows(account):
    """Rows of the namespace journal of @account's mount (read-only)."""
    return deletes_db_rows(account, "SELECT path, op FROM del ORDER BY seq")


def folders(emu, user):
    return sorted(p for p, x in live(emu, user).items() if x["type"] == "folder")


def mkdirs_sent(emu):
    return emu.stats()["requests"]["command"]  # mkDir, delete and move


def test_mkdir_returns_before_the_service(account, emulator, mounter):
    """With mkDir requests taking 60 s, mkdir -p of a chain and of an empty
    folder returns at once; the folders show in the mount; the service gets
    them later (one mkDir for the chain a/b/c), and the journal empties."""
    m = mounter(account)
    emulator.reset_stats()
    with knobs(emulator, latency_ms=60000, latency_kinds="command"):
        subprocess.run(["mkdir", "-p", J(m, "a", "b", "c")], check=True, timeout=20)
        os.mkdir(J(m, "e"))
        assert os.path.isdir(J(m, "a", "b", "c")) and os.path.isdir(J(m, "e"))
        assert sorted(os.listdir(m.path)) == ["a", "e"]
        assert [p for p, op in journal_rows(account) if op == 1] == ["a", "a/b", "a/b/c", "e"]
        assert status(m)["pending"]["mkdirs"] == 4
    wait_for(lambda: {"a/b/c", "e"} <= set(folders(emulator, account.user)), 60,
             "the folders on the service")
    wait_for(lambda: journal_rows(account) == [], 30, "the journal to empty")
    assert mkdirs_sent(emulator) == 2, emulator.stats()["requests"]
    assert status(m)["pending"]["mkdirs"] == 0
    m.unmount()


def test_upload_below_makes_the_folder(account, emulator, mounter):
    """tar-like: folders made, files written into them, uploads slow. The
    uploads make the folders (allocate makes parents): no mkDir is sent for
    a folder that got a file, one for the empty one."""
    m = mounter(account)
    emulator.reset_stats()
    data = {}
    with knobs(emulator, latency_ms=300, latency_kinds="upload,allocate"):
        os.makedirs(J(m, "t", "x", "y"))
        os.mkdir(J(m, "t", "empty"))
        for rel in ("t/top.txt", "t/x/y/deep.txt"):
            data[rel] = os.urandom(700)
            write_file(J(m, *rel.split("/")), data[rel])
        for rel, b in data.items():
            wait_server(emulator, account.user, rel, md5_bytes(b))
        wait_for(lambda: "t/empty" in folders(emulator, account.user), 90,
                 "the empty folder on the service")
    wait_for(lambda: journal_rows(account) == [], 30, "the journal to empty")
    assert mkdirs_sent(emulator) == 1, emulator.stats()["requests"]
    assert set(folders(emulator, account.user)) >= {"t", "t/x", "t/x/y", "t/empty"}
    m.unmount()


def test_rmdir_of_a_pending_folder_costs_nothing(account, emulator, mounter):
    """mkdir then rmdir (and a mkdir -p chain removed bottom-up) before the
    creation was sent: no request at all, nothing on the service."""
    m = mounter(account)
    emulator.reset_stats()
    os.mkdir(J(m, "gone"))
    os.makedirs(J(m, "p", "q", "r"))
    os.rmdir(J(m, "gone"))
    os.rmdir(J(m, "p", "q", "r"))
    os.rmdir(J(m, "p", "q"))
    os.rmdir(J(m, "p"))
    assert os.listdir(m.path) == []
    assert journal_rows(account) == []
    m.unmount()
    assert mkdirs_sent(emulator) == 0, emulator.stats()["requests"]
    assert folders(emulator, account.user) == []


def test_rename_of_pending_folders_and_files(account, emulator, mounter):
    """A pending folder renamed (with a file uploading in it), a server file
    moved into a pending folder, a file moved out of one: the service ends
    as the mount shows it."""
    emulator.seed([{"path": "s.txt", "content": "on the server\n"}], user=account.user)
    m = mounter(account)
    inner = os.urandom(900)
    with knobs(emulator, latency_ms=300, latency_kinds="upload,allocate"):
        os.makedirs(J(m, "old", "sub"))
        write_file(J(m, "old", "sub", "f.bin"), inner)
        os.rename(J(m, "old"), J(m, "new"))
        os.mkdir(J(m, "dst"))
        os.rename(J(m, "s.txt"), J(m, "dst", "s.txt"))
        os.mkdir(J(m, "from"))
        write_file(J(m, "from", "out.txt"), b"moved out\n")
        os.rename(J(m, "from", "out.txt"), J(m, "out.txt"))
        assert os.listdir(J(m, "new", "sub")) == ["f.bin"]
        wait_server(emulator, account.user, "new/sub/f.bin", md5_bytes(inner))
        wait_server(emulator, account.user, "out.txt", md5_bytes(b"moved out\n"))
    m.unmount()
    lv = live(emulator, account.user)
    assert lv["dst/s.txt"]["md5"] == md5_bytes(b"on the server\n"), sorted(lv)
    assert "s.txt" not in lv and "old" not in lv and "from/out.txt" not in lv, sorted(lv)
    assert lv["from"]["type"] == "folder", sorted(lv)
    assert journal_rows(account) == []


def test_listing_refresh_keeps_pending_folders(account, emulator, mounter):
    """While creations are pending (mkDir slow), listings of the parent
    refreshed from the service (which has no such folder) do not hide the
    new folder nor what is in it."""
    emulator.seed([{"path": "d/old.txt", "content": "old\n"}], user=account.user)
    m = mounter(account, options=["dir_cache_time=1"])
    assert os.listdir(J(m, "d")) == ["old.txt"]
    with knobs(emulator, latency_ms=60000, latency_kinds="command"):
        os.makedirs(J(m, "d", "n", "sub"))
        before = emulator.stats()["requests"]["folder"]

        def refreshed():
            assert sorted(os.listdir(J(m, "d"))) == ["n", "old.txt"]
            assert os.listdir(J(m, "d", "n")) == ["sub"]
            return emulator.stats()["requests"]["folder"] >= before + 2
        wait_for(refreshed, 30, "two listings of d refreshed from the service", interval=0.3)
        assert "d/n" not in live(emulator, account.user)
    wait_for(lambda: "d/n/sub" in folders(emulator, account.user), 60,
             "the folders on the service")
    wait_for(lambda: journal_rows(account) == [], 30, "the journal to empty")
    assert sorted(os.listdir(J(m, "d"))) == ["n", "old.txt"]
    m.unmount()


def test_mkdir_survives_kill_9(account, emulator, mounter):
    """SIGKILL right after mkdir returned (the service has seen no mkDir):
    the next mount shows the folders and makes them on the service."""
    m = mounter(account)
    with knobs(emulator, latency_ms=60000, latency_kinds="command"):
        os.mkdir(J(m, "k"))
        os.makedirs(J(m, "k2", "deep"))
        m.kill()
    assert [p for p, _ in journal_rows(account)] == ["k", "k2", "k2/deep"]
    assert folders(emulator, account.user) == []
    m2 = mounter(account, allow_errors=True)
    assert sorted(os.listdir(m2.path)) == ["k", "k2"]
    wait_for(lambda: {"k", "k2/deep"} <= set(folders(emulator, account.user)), 60,
             "the replayed creations on the service")
    wait_for(lambda: journal_rows(account) == [], 30, "the journal to empty")
    assert sorted(os.listdir(m2.path)) == ["k", "k2"]
    m2.unmount()


def test_unmount_makes_pending_folders(account, emulator, mounter):
    """Empty folders still waiting at unmount are made before the daemon
    exits; one that another client made meanwhile is fine."""
    m = mounter(account)
    os.makedirs(J(m, "u", "v"))
    os.mkdir(J(m, "both"))
    emulator.seed([{"path": "both/theirs.txt", "content": "theirs\n"}], user=account.user)
    m.unmount()
    assert {"u/v", "both"} <= set(folders(emulator, account.user))
    assert "both/theirs.txt" in live(emulator, account.user)
    assert journal_rows(account) == []


def test_file_in_pending_folder_uploads_under_fault(account, emulator, mounter):
    """A file created in a pending folder uploads (the upload makes the
    folder) even when the first mkDir attempts fail."""
    m = mounter(account)
    with knobs(emulator, error_rate=1.0, error_status=503, error_kinds="command"):
        os.mkdir(J(m, "f"))
        write_file(J(m, "f", "a.txt"), b"a\n")
        wait_server(emulator, account.user, "f/a.txt", md5_bytes(b"a\n"))
    wait_for(lambda: journal_rows(account) == [], 30, "the journal to empty")
    m.unmount()
