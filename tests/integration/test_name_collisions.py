"""Issue 14 item 7: server entries of one folder whose names decode to the
same local name ("twins": "．．" and "‛．‛．", "a:b" and "a：b" made by other
clients). The canonical spelling keeps the name; every other one is shown as
"NAME (jottacloud XXXXXXXX).EXT" (a hash of its own server name), reads its
own content, and is renamed and unlinked as itself on the server; the
daemon warns once per such entry per listing, never per lookup; the server
state seen by rclone is unchanged by merely mounting and reading.

Every mount is unmounted with fusermount3 -u and must exit 0 with a clean log
(helpers.Mount.unmount).
"""
import errno
import os
import time

from helpers import errno_of, live, read_file, twin_name, wait_for

WARN = "decodes to the same name as another entry"

# server name -> content; pairs that decode alike
SEED = {
    "\uff0e\uff0e": "raw dotdot",                       # decodes to "..", shown "．．"
    "\u201b\uff0e\u201b\uff0e": "canonical dotdot",    # the encoding of a local "．．"
    "a:b": "raw colon",                                 # another client's spelling
    "a\uff1ab": "canonical colon",
    "r:1.txt": "raw r",
    "r\uff1a1.txt": "canonical r",
    "msf:1.jpg": "android",                             # non-canonical, no twin
}
DOTDOT = "\uff0e\uff0e"
SHOWN = {
    DOTDOT: "\u201b\uff0e\u201b\uff0e",
    twin_name(DOTDOT, "\uff0e\uff0e"): "\uff0e\uff0e",
    "a:b": "a\uff1ab",
    twin_name("a:b", "a:b"): "a:b",
    "r:1.txt": "r\uff1a1.txt",
    twin_name("r:1.txt", "r:1.txt"): "r:1.txt",
    "msf:1.jpg": "msf:1.jpg",
}
TWINS = ["\uff0e\uff0e", "a:b", "r:1.txt"]      # the server names that get a suffix


def seed(emulator, user, folder="x"):
    emulator.seed([{"path": [folder, s], "content": c} for s, c in SEED.items()], user=user)


def warnings(m):
    return [line for line in m.output().splitlines() if WARN in line]


def check_view(d):
    assert sorted(os.listdir(d)) == sorted(SHOWN)
    for shown, sname in SHOWN.items():
        assert read_file(os.path.join(d, shown)) == SEED[sname].encode(), shown
        assert os.stat(os.path.join(d, shown)).st_size == len(SEED[sname])


def test_twins_reachable_and_warned_once_per_listing(account, emulator, mounter, tmp_path):
    """Both twins are listed and read their own content, with a folder GET
    and with one liststream (-o prefetch); one warning line per suffixed
    entry per listing, none for lookups, reads or listings from the cache
    (no background revalidation: poll_interval=0)."""
    seed(emulator, account.user)
    assert twin_name("a:b", "a:b") == "a:b (jottacloud 08bd8540)"
    assert twin_name(DOTDOT, DOTDOT) == DOTDOT + " (jottacloud 180eb51f)"
    assert twin_name("r:1.txt", "r:1.txt").endswith(").txt")

    m = mounter(account, options=["cache_dir=%s" % (tmp_path / "c1"), "poll_interval=0"])
    d = os.path.join(m.path, "x")
    check_view(d)
    w = warnings(m)
    assert len(w) == len(TWINS), w
    for s in TWINS:
        assert sum(("'x/%s'" % s) in line for line in w) == 1, (s, w)
    assert any(twin_name("a:b", "a:b") in line for line in w)
    # Lookups, reads and cached listings add nothing.
    for _ in range(3):
        check_view(d)
        for shown in SHOWN:
            os.stat(os.path.join(d, shown))
    assert len(warnings(m)) == len(TWINS)
    m.unmount()

    # Each new listing of the folder warns again, once per entry.
    m = mounter(account, options=["cache_dir=%s" % (tmp_path / "c2"), "dir_cache_time=1",
                                       "poll_interval=0"])
    d = os.path.join(m.path, "x")
    check_view(d)

    def listed_again():                         # once x is stale (dir_cache_time=1)
        check_view(d)
        return min(sum(("'x/%s'" % s) in line for line in warnings(m)) for s in TWINS) >= 2
    wait_for(listed_again, 60, "a second listing of x to warn again")
    w = warnings(m)
    counts = [sum(("'x/%s'" % s) in line for line in w) for s in TWINS]
    assert counts[0] >= 2 and counts == [counts[0]] * len(TWINS), (counts, w)
    m.unmount()

    # The recursive listing path: the same names, the same warnings.
    emulator.reset_stats()
    m = mounter(account, options=["prefetch", "cache_dir=%s" % (tmp_path / "c3"),
                                       "poll_interval=0"])
    deadline = time.monotonic() + 10
    while emulator.stats()["requests"]["liststream"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    while len(warnings(m)) < len(TWINS) and time.monotonic() < deadline:
        time.sleep(0.1)
    requests = emulator.stats()["requests"]
    assert requests["liststream"] >= 1
    check_view(os.path.join(m.path, "x"))
    w = warnings(m)
    if requests["folder"] <= 1:     # only the stream listed x
        assert len(w) == len(TWINS), w
    for s in TWINS:
        assert sum(("'x/%s'" % s) in line for line in w) >= 1, (s, w)
    m.unmount()


def test_twin_names_address_their_own_server_objects(account, emulator, mounter):
    """Creating a shown name gives EEXIST; renaming and unlinking a suffixed
    twin moves and deletes exactly its own server object."""
    seed(emulator, account.user)
    m = mounter(account)
    d = os.path.join(m.path, "x")
    check_view(d)
    for shown in SHOWN:
        p = os.path.join(d, shown)
        assert errno_of(os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
        assert errno_of(os.mkdir, p) == errno.EEXIST

    # rename the suffixed "r:1.txt" away: the raw server name moves
    os.rename(os.path.join(d, twin_name("r:1.txt", "r:1.txt")), os.path.join(d, "moved.txt"))
    assert read_file(os.path.join(d, "moved.txt")) == b"raw r"
    assert read_file(os.path.join(d, "r:1.txt")) == b"canonical r"
    # unlink the suffixed "．．" and "a:b": only their server objects go
    os.unlink(os.path.join(d, twin_name(DOTDOT, DOTDOT)))
    os.unlink(os.path.join(d, twin_name("a:b", "a:b")))
    assert sorted(os.listdir(d)) == sorted([DOTDOT, "a:b", "r:1.txt", "moved.txt",
                                            "msf:1.jpg"])
    assert read_file(os.path.join(d, DOTDOT)) == b"canonical dotdot"
    assert read_file(os.path.join(d, "a:b")) == b"canonical colon"
    want = sorted(["\u201b\uff0e\u201b\uff0e", "a\uff1ab", "r\uff1a1.txt", "moved.txt",
                   "msf:1.jpg"])

    def names():
        srv = live(emulator, account.user)
        return sorted(p[len("x/"):] for p, e in srv.items() if p.startswith("x/"))
    # deletes reach the service in the background
    wait_for(lambda: names() == want, 30, "the service to match")
    m.unmount()


def test_a_lone_non_canonical_name_keeps_its_name(account, emulator, mounter):
    """Without a twin nothing changes; when the twin goes away on the server,
    the suffixed entry gets its plain name back."""
    emulator.seed([{"path": "y/a:b", "content": "raw"},
                   {"path": "y/a\uff1ab", "content": "canonical"}], user=account.user)
    m = mounter(account, options=["dir_cache_time=1"])
    d = os.path.join(m.path, "y")
    assert sorted(os.listdir(d)) == sorted(["a:b", twin_name("a:b", "a:b")])
    emulator.seed([{"path": "y/a\uff1ab", "content": "canonical", "deleted": True}],
                  user=account.user)
    wait_for(lambda: os.listdir(d) == ["a:b"] and errno_of(
        os.stat, os.path.join(d, twin_name("a:b", "a:b"))) == errno.ENOENT, 60,
        "the mount to see the twin deleted (dir_cache_time=1)")
    assert read_file(os.path.join(d, "a:b")) == b"raw"
    assert errno_of(os.stat, os.path.join(d, twin_name("a:b", "a:b"))) == errno.ENOENT
    m.unmount()


def test_rclone_view_is_unchanged(account, emulator, mounter, rclone):
    """Mounting, listing and reading twins changes nothing on the server:
    rclone 1.60 lists the same entries with the same checksums before and
    after."""
    def view():     # folders have no stored time: names only for them
        return (rclone.run("lsf", "-R", "--files-only", "--format", "pth", "jc:").out,
                rclone.run("lsf", "-R", "--dirs-only", "jc:").out)
    seed(emulator, account.user)
    before = view()
    m = mounter(account)
    check_view(os.path.join(m.path, "x"))
    m.unmount()
    after = view()
    assert before == after
    after = after[0]
    assert after.count("a:b;") == 2, after      # rclone shows both as "a:b"
