"""Background deletes (issue 9, item 5; cache/deletes.h).

unlink and rmdir are journalled (<cache>/deletes.db) and applied by the
delete queue's workers: `rm -rf` returns at local speed, the service follows;
the deletes below a removed folder collapse into one folder delete; a crash
after rm returned replays them at the next mount; a same-name re-creation
right after a delete ends live on the service; a listing refreshed while a
delete is pending does not bring the name back.
"""
import os
import subprocess

from helpers import (deletes_db_rows, knobs, live, md5_bytes, tree, wait_for, wait_idle,
                     wait_server, write_file)


def J(m, *parts):
    return os.path.join(m.path, *parts)


def seed_tree(emu, user, top, n, dirs):
    emu.seed([{"path": "%s/d%02d/f%04d.txt" % (top, i % dirs, i), "content": "file %d\n" % i}
              for i in range(n)], user=user)


def live_under(emu, user, top):
    """Paths at or under @top the service still shows (nothing above deleted)."""
    t = tree(emu, user)

    def alive(p):
        while p:
            x = t.get(p)
            if x is None or x["deleted"] is not None:
                return False
            p = p.rsplit("/", 1)[0] if "/" in p else ""
        return True
    return sorted(p for p in t if (p == top or p.startswith(top + "/")) and alive(p))


def walk(path):
    n = 0
    for _, dirs, files in os.walk(path):
        n += len(dirs) + len(files)
    return n


def journal_rows(account):
    """Rows of the delete journal of @account's mount (read-only)."""
    return deletes_db_rows(account, "SELECT path, is_dir FROM del ORDER BY seq")


def test_rm_rf_returns_then_service_matches(account, emulator, mounter):
    """rm -rf of a 300-file tree returns without waiting for the service
    (each delete is slow), the mount shows nothing of it at once, and the
    service matches shortly after, with one folder delete for the tree."""
    seed_tree(emulator, account.user, "big", 300, 6)
    m = mounter(account)
    assert walk(J(m, "big")) == 306
    emulator.reset_stats()
    with knobs(emulator, latency_ms=300, latency_kinds="command"):
        subprocess.run(["rm", "-rf", J(m, "big")], check=True, timeout=120)
        # nothing was applied yet: rm did not wait for the slow service
        assert emulator.stats()["requests"]["command"] == 0, emulator.stats()["requests"]
        assert not os.path.exists(J(m, "big"))
        assert "big" not in os.listdir(m.path)
        wait_for(lambda: live_under(emulator, account.user, "big") == [], 60,
                 "the service to drop the tree")
    s = emulator.stats()["requests"]
    assert s["command"] == 1, ("one folder delete for the whole tree", s)
    assert "big" not in os.listdir(m.path)
    m.unmount()


def test_deletes_survive_a_crash(account, emulator, mounter):
    """SIGKILL right after rm returned (the service has not seen any delete):
    the next mount replays the journal, and the service converges."""
    seed_tree(emulator, account.user, "t", 40, 4)
    emulator.seed([{"path": "keep/one.txt", "content": "one\n"},
                   {"path": "keep/two.txt", "content": "two\n"}], user=account.user)
    m = mounter(account)
    assert walk(J(m, "t")) == 44
    assert sorted(os.listdir(J(m, "keep"))) == ["one.txt", "two.txt"]
    with knobs(emulator, latency_ms=60000, latency_kinds="command"):
        subprocess.run(["rm", "-rf", J(m, "t")], check=True, timeout=120)
        os.unlink(J(m, "keep", "one.txt"))
        m.kill()
    rows = journal_rows(account)
    assert ("t", 1) in rows and ("keep/one.txt", 0) in rows, rows
    assert live_under(emulator, account.user, "t"), "a delete reached the service early"
    m2 = mounter(account, allow_errors=True)
    # the mount shows the deletes at once, before the service has them
    assert "t" not in os.listdir(m2.path)
    assert os.listdir(J(m2, "keep")) == ["two.txt"]
    wait_for(lambda: live_under(emulator, account.user, "t") == [] and
             "keep/one.txt" not in live(emulator, account.user), 60,
             "the replayed deletes on the service")
    assert "keep/two.txt" in live(emulator, account.user)
    assert os.listdir(J(m2, "keep")) == ["two.txt"]
    m2.unmount()
    assert journal_rows(account) == []


def test_same_name_recreated_right_after_delete(account, emulator, mounter):
    """unlink then create the same name, rm -rf then mkdir the same folder,
    unlink B then rename A to B: with slow deletes and uploads, every new
    entry ends live on the service (no late delete removes it)."""
    emulator.seed([{"path": "a.txt", "content": "old a\n"},
                   {"path": "dir/x.txt", "content": "old x\n"},
                   {"path": "dir/y.txt", "content": "old y\n"},
                   {"path": "B.txt", "content": "old B\n"}], user=account.user)
    m = mounter(account)
    assert sorted(os.listdir(m.path)) == ["B.txt", "a.txt", "dir"]
    assert sorted(os.listdir(J(m, "dir"))) == ["x.txt", "y.txt"]
    new_a, new_x, moved = os.urandom(3000), os.urandom(2000), os.urandom(1000)
    with knobs(emulator, latency_ms=400, latency_kinds="command,upload,allocate"):
        os.unlink(J(m, "a.txt"))
        write_file(J(m, "a.txt"), new_a)
        subprocess.run(["rm", "-rf", J(m, "dir")], check=True, timeout=60)
        os.mkdir(J(m, "dir"))
        write_file(J(m, "dir", "x.txt"), new_x)
        os.unlink(J(m, "B.txt"))
        write_file(J(m, "A2.txt"), moved)
        os.rename(J(m, "A2.txt"), J(m, "B.txt"))
        assert sorted(os.listdir(J(m, "dir"))) == ["x.txt"]
        wait_server(emulator, account.user, "a.txt", md5_bytes(new_a))
        wait_server(emulator, account.user, "dir/x.txt", md5_bytes(new_x))
        wait_server(emulator, account.user, "B.txt", md5_bytes(moved))
    # unmount drains what is left: nothing may remove the new entries later
    m.unmount()
    lv = live(emulator, account.user)
    assert lv["a.txt"]["md5"] == md5_bytes(new_a), lv.get("a.txt")
    assert lv["dir/x.txt"]["md5"] == md5_bytes(new_x), lv.get("dir/x.txt")
    assert lv["B.txt"]["md5"] == md5_bytes(moved), lv.get("B.txt")
    assert "dir/y.txt" not in lv and "A2.txt" not in lv, sorted(lv)


def test_listing_refresh_does_not_resurrect(account, emulator, mounter):
    """While a delete is pending, listings refreshed from the service (which
    still shows the file) do not bring the name back."""
    emulator.seed([{"path": "d/gone.txt", "content": "bye\n"},
                   {"path": "d/stays.txt", "content": "hi\n"}], user=account.user)
    m = mounter(account, options=["dir_cache_time=1"])
    assert sorted(os.listdir(J(m, "d"))) == ["gone.txt", "stays.txt"]
    with knobs(emulator, latency_ms=60000, latency_kinds="command"):
        os.unlink(J(m, "d", "gone.txt"))
        before = emulator.stats()["requests"]["folder"]

        def refreshed():
            assert os.listdir(J(m, "d")) == ["stays.txt"]
            assert not os.path.exists(J(m, "d", "gone.txt"))
            return emulator.stats()["requests"]["folder"] >= before + 2
        wait_for(refreshed, 30, "two listings of d refreshed from the service", interval=0.3)
        assert "d/gone.txt" in live(emulator, account.user)
    wait_for(lambda: "d/gone.txt" not in live(emulator, account.user), 60,
             "the delete on the service")
    assert os.listdir(J(m, "d")) == ["stays.txt"]
    m.unmount()


def test_rmdir_absorbs_child_deletes(account, emulator, mounter):
    """Files unlinked one by one, then their folder removed: one folder delete
    on the service, none for the files."""
    emulator.seed([{"path": "p/q/f%d" % i, "content": "%d\n" % i} for i in range(20)],
                  user=account.user)
    m = mounter(account)
    assert len(os.listdir(J(m, "p", "q"))) == 20
    emulator.reset_stats()
    for name in os.listdir(J(m, "p", "q")):
        os.unlink(J(m, "p", "q", name))
    os.rmdir(J(m, "p", "q"))
    os.rmdir(J(m, "p"))
    assert os.listdir(m.path) == []
    wait_for(lambda: live_under(emulator, account.user, "p") == [], 60, "p gone on the service")
    m.unmount()
    assert emulator.stats()["requests"]["command"] == 1, emulator.stats()["requests"]


def test_delete_answered_not_found_counts_as_done(account, emulator, mounter):
    """A delete the service answers 404 (gone already) is done: the journal
    empties, nothing is retried or logged as an error."""
    emulator.seed([{"path": "n/f.txt", "content": "f\n"}], user=account.user)
    m = mounter(account)
    assert os.listdir(J(m, "n")) == ["f.txt"]
    with knobs(emulator, error_rate=1.0, error_status=404, error_kinds="command"):
        os.unlink(J(m, "n", "f.txt"))
        wait_for(lambda: journal_rows(account) == [], 30, "the delete journal to empty")
        assert emulator.stats()["faults"].get("error", 0) == 1, emulator.stats()["faults"]
    assert os.listdir(J(m, "n")) == []
    m.unmount()


def test_folder_moved_after_deletes_below_it(account, emulator, mounter):
    """Files deleted in a folder that is then renamed: the deletes reach the
    service before the move, so nothing deleted here reappears under the new
    name."""
    emulator.seed([{"path": "src/a.txt", "content": "a\n"},
                   {"path": "src/b.txt", "content": "b\n"}], user=account.user)
    m = mounter(account)
    assert sorted(os.listdir(J(m, "src"))) == ["a.txt", "b.txt"]
    with knobs(emulator, latency_ms=300, latency_kinds="command"):
        os.unlink(J(m, "src", "a.txt"))
        os.rename(J(m, "src"), J(m, "dst"))
    assert os.listdir(J(m, "dst")) == ["b.txt"]
    m.unmount()
    lv = live(emulator, account.user)
    assert "dst/b.txt" in lv and "dst/a.txt" not in lv and "src" not in lv, sorted(lv)


def test_unmount_applies_pending_deletes(account, emulator, mounter):
    """Deletes still waiting in the journal at unmount are applied before the
    daemon exits."""
    emulator.seed([{"path": "u/%d.txt" % i, "content": "%d\n" % i} for i in range(5)] +
                  [{"path": "v.txt", "content": "v\n"}], user=account.user)
    m = mounter(account)
    assert len(os.listdir(J(m, "u"))) == 5
    subprocess.run(["rm", "-rf", J(m, "u")], check=True, timeout=60)
    os.unlink(J(m, "v.txt"))
    m.unmount()
    assert live_under(emulator, account.user, "u") == []
    assert "v.txt" not in live(emulator, account.user)
    assert journal_rows(account) == []


def test_rm_rf_of_files_still_uploading(account, emulator, mounter):
    """A tree written and removed at once, its uploads slow: the uploads are
    cancelled, the folder delete removes what may have landed, and nothing
    of it is left on the service."""
    m = mounter(account)
    with knobs(emulator, latency_ms=300, latency_kinds="upload,allocate"):
        os.makedirs(J(m, "w", "sub"))
        for i in range(30):
            write_file(J(m, "w", "sub" if i % 2 else "", "f%02d" % i), os.urandom(500 + i))
        subprocess.run(["rm", "-rf", J(m, "w")], check=True, timeout=60)
        assert not os.path.exists(J(m, "w"))
        wait_idle(m)
        wait_for(lambda: live_under(emulator, account.user, "w") == [], 60,
                 "nothing of w on the service")
    m.unmount()
    assert live_under(emulator, account.user, "w") == []
