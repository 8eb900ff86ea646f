"""Unmodified rclone 1.60 (Debian) against the emulator: the emulator is faithful
enough when the real client works with it unchanged.

rclone reaches the hard-coded https://{jfs,api,id,up}.jottacloud.com hosts
through the emulator's CONNECT proxy (HTTPS_PROXY) and trusts its test CA
(--ca-cert).  The tests share one emulator and one rclone remote and run in
file order; each checks real outcomes (rclone's output and what the emulator
stores), not just exit codes.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu import Emulator  # noqa: E402
from helpers import md5_bytes as md5, RClone  # noqa: E402

LOGIN = "rcloneuser"

# Local names covering every class rclone 1.60.1's Jottacloud encoding touches,
# with the server name the emulator must end up storing (docs section 11.4).
# Not covered on purpose: ';' and '%XX' (rclone sends them in forms the real
# service refuses) and U+201B (rclone 1.60.1 cannot read such local files).
NAMES = {
    "q?mark.txt": "q\uff1fmark.txt",
    "star*.txt": "star\uff0a.txt",
    "colon:name.txt": "colon\uff1aname.txt",
    "lt<gt>.txt": "lt\uff1cgt\uff1e.txt",
    "pipe|.txt": "pipe\uff5c.txt",
    'dq".txt': "dq\uff02.txt",
    "pct%zz.txt": "pct%zz.txt",
    " lead.txt": " lead.txt",
    "trail.txt ": "trail.txt ",
    "plus+sign.txt": "plus+sign.txt",
    "hash#tag.txt": "hash#tag.txt",
    "amp&eq=.txt": "amp&eq=.txt",
    "apos'q.txt": "apos'q.txt",
    "back\\slash.txt": "back\\slash.txt",
    "utf8-\u00e6\u00f8\u00e5-\u00fc.txt": "utf8-\u00e6\u00f8\u00e5-\u00fc.txt",
    "fullwidth\uff1fq.txt": "fullwidth\u201b\uff1fq.txt",
}
DIR_NAMES = {"dir ?*:<>|": "dir \uff1f\uff0a\uff1a\uff1c\uff1e\uff5c"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed (apt-get install rclone); this test needs it")
    v = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout
    assert "rclone v1." in v, v
    work = str(tmp_path_factory.mktemp("rclone"))
    e = Emulator(data_dir=os.path.join(work, "emu"))
    rc = RClone(e, work)
    rc.env["TZ"] = "UTC"  # lsl prints local times; the assertions are in UTC
    src = os.path.join(work, "src")
    build_tree(src)
    yield {"emu": e, "rc": rc, "src": src, "work": work}
    code = e.stop()
    err = e.stderr()
    e.close()
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err, err


def build_tree(src):
    os.makedirs(src)
    for i, name in enumerate(NAMES):
        with open(os.path.join(src, name), "wb") as f:
            f.write(("content of %r, %d\n" % (name, i)).encode() * (i + 1))
    for d in DIR_NAMES:
        os.makedirs(os.path.join(src, d, "inner"))
        with open(os.path.join(src, d, "inner", "f:1.txt"), "wb") as f:
            f.write(b"inside a special directory\n")
    os.makedirs(os.path.join(src, "plaindir", "sub"))
    with open(os.path.join(src, "plaindir", "sub", "x?.txt"), "wb") as f:
        f.write(b"x")
    os.makedirs(os.path.join(src, "empty dir"))
    with open(os.path.join(src, "big.bin"), "wb") as f:
        f.write(os.urandom(3 * 2 ** 20 + 17))
    open(os.path.join(src, "zero.bin"), "wb").close()
    os.utime(os.path.join(src, "big.bin"), (1500000000, 1500000000))


def local_files(src):
    out = {}
    for root, dirs, files in os.walk(src):
        for n in files:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, src)] = f.read()
    return out


def server_path(rel):
    """Local relative path -> server path under the mountpoint (rclone's encoding)."""
    parts = rel.split("/")
    enc = []
    for p in parts:
        enc.append(NAMES.get(p, DIR_NAMES.get(p, p.replace("?", "\uff1f").replace(":", "\uff1a"))))
    return "/".join(enc)


def tree(e):
    return {x["path"]: x for x in e.tree(LOGIN)}


# ------------------------------------------------------------------ tests, in order

def test_config_standard_flow(env):
    e, rc = env["emu"], env["rc"]
    rc.configure(e.login_token(LOGIN, issuer="https://id.jottacloud.com"))
    c = rc.config()
    assert c["type"] == "jottacloud" and c["configVersion"] == "1"
    assert c["client_id"] == "jottacli"
    assert c["tokenURL"] == ("https://id.jottacloud.com/auth/realms/jottacloud/protocol/"
                             "openid-connect/token")
    tok = json.loads(c["token"])
    assert tok["access_token"] and tok["refresh_token"] and tok["token_type"] == "Bearer"
    assert e.stats()["grants"].get("password") == 1


def test_about(env):
    e, rc = env["emu"], env["rc"]
    p = rc.run("about", "jc:")
    assert "Used:" in p.out and "Total:" not in p.out  # capacity -1: only Used
    e.set_knobs(capacity=10 * 2 ** 30)
    try:
        js = json.loads(rc.run("about", "jc:", "--json").out)
    finally:
        e.set_knobs(capacity=-1)
    assert js["total"] == 10 * 2 ** 30 and js["used"] == 0 and js["free"] == 10 * 2 ** 30


def test_mkdir(env):
    e, rc = env["emu"], env["rc"]
    rc.run("mkdir", "jc:made/deep er")
    t = tree(e)
    assert t["made/deep er"]["type"] == "folder" and t["made/deep er"]["deleted"] is None
    assert rc.run("lsf", "jc:made").out == "deep er/\n"


def test_copy_tree_with_every_encoded_class(env):
    e, rc, src = env["emu"], env["rc"], env["src"]
    rc.run("copy", src, "jc:special", "--create-empty-src-dirs")
    t = tree(e)
    files = local_files(src)
    for rel, data in files.items():
        sp = "special/" + server_path(rel)
        assert sp in t, (rel, sp, sorted(t))
        assert t[sp]["md5"] == md5(data) and t[sp]["size"] == len(data), rel
        assert t[sp]["deleted"] is None
    assert t["special/empty dir"]["type"] == "folder"
    assert t["special/big.bin"]["modified"] == 1500000000
    assert e.content("special/" + NAMES["q?mark.txt"], user=LOGIN) == files["q?mark.txt"]


def test_lsf_and_lsl_with_liststream(env):
    e, rc, src = env["emu"], env["rc"], env["src"]
    want = set(local_files(src))
    e.reset_stats()
    got = rc.run("lsf", "-R", "--fast-list", "--files-only", "jc:special").out
    assert set(got.split("\n")) - {""} == want
    assert e.stats()["requests"]["liststream"] == 1
    dirs = rc.run("lsf", "-R", "--fast-list", "--dirs-only", "jc:special").out
    assert "empty dir/" in dirs.split("\n")
    # Per-directory listing (no liststream) gives the same names.
    got2 = rc.run("lsf", "-R", "--files-only", "jc:special").out
    assert set(got2.split("\n")) - {""} == want
    lsl = rc.run("lsl", "--fast-list", "jc:special").out
    line = [ln for ln in lsl.splitlines() if ln.endswith(" big.bin")][0]
    size, day, clock = line.split()[:3]
    assert int(size) == 3 * 2 ** 20 + 17 and day == "2017-07-14" and clock.startswith("02:40:00")


def test_check_reports_no_differences(env):
    rc, src = env["rc"], env["src"]
    p = rc.run("check", src, "jc:special")
    assert "0 differences found" in p.err, p.err
    assert "%d matching files" % len(local_files(src)) in p.err, p.err


def test_second_copy_is_instant(env):
    e, rc, src = env["emu"], env["rc"], env["src"]
    n = len(local_files(src))
    # Same destination: rclone sees identical files and sends nothing at all.
    e.reset_stats()
    rc.run("copy", src, "jc:special")
    s = e.stats()
    assert s["requests"]["allocate"] == 0 and s["requests"]["upload"] == 0
    # New destination: every allocate finds the content in the account.
    e.reset_stats()
    rc.run("copy", src, "jc:special again")
    s = e.stats()
    assert s["requests"]["allocate"] == n and s["instant_uploads"] == n
    assert s["requests"]["upload"] == 0 and s["upload_bytes"] == 0
    assert "0 differences found" in rc.run("check", src, "jc:special again").err


def test_cat_offset_count_uses_range(env):
    e, rc, src = env["emu"], env["rc"], env["src"]
    with open(os.path.join(src, "big.bin"), "rb") as f:
        data = f.read()
    e.reset_stats()
    p = rc.run("cat", "jc:special/big.bin", "--offset", "1000000", "--count", "54321")
    assert p.stdout == data[1000000:1000000 + 54321]
    s = e.stats()
    assert s["statuses"].get("206") == 1 and s["download_bytes"] == 54321


def test_moveto(env):
    e, rc = env["emu"], env["rc"]
    e.reset_stats()
    rc.run("moveto", "jc:special/q?mark.txt", "jc:moved/renamed?.txt")
    t = tree(e)
    assert "special/" + NAMES["q?mark.txt"] not in t
    assert t["moved/renamed\uff1f.txt"]["md5"] == md5(
        local_files(env["src"])["q?mark.txt"])
    assert e.stats()["commands"].get("mv") == 1 and e.stats()["requests"]["upload"] == 0
    assert rc.run("lsf", "jc:moved").out == "renamed?.txt\n"
    # Onto an existing file: rclone 1.60.1 trashes the target (dl=true), then moves
    # onto the tombstone and needs the answer to be live (no deleted attribute).
    rc.run("copyto", "jc:special/star*.txt", "jc:moved/victim.txt")
    rc.run("copyto", os.path.join(env["src"], "pipe|.txt"), "jc:moved/other.txt")
    e.reset_stats()
    rc.run("moveto", "jc:moved/other.txt", "jc:moved/victim.txt")
    assert e.stats()["commands"] == {"mkDir": 1, "dl": 1, "mv": 1}
    t = tree(e)
    assert t["moved/victim.txt"]["md5"] == md5(local_files(env["src"])["pipe|.txt"])
    assert t["moved/victim.txt"]["deleted"] is None
    assert "moved/other.txt" not in t
    assert rc.run("lsf", "jc:moved").out == "renamed?.txt\nvictim.txt\n"


def test_copyto_server_side(env):
    e, rc = env["emu"], env["rc"]
    e.reset_stats()
    rc.run("copyto", "jc:special/amp&eq=.txt", "jc:copies/amp copy.txt")
    t = tree(e)
    assert t["copies/amp copy.txt"]["md5"] == t["special/amp&eq=.txt"]["md5"]
    s = e.stats()
    assert s["commands"].get("cp") == 1 and s["requests"]["upload"] == 0


def test_move_directory_uses_mvdir(env):
    e, rc = env["emu"], env["rc"]
    e.reset_stats()
    rc.run("move", "jc:special/plaindir", "jc:moveddir")
    t = tree(e)
    assert t["moveddir/sub/x\uff1f.txt"]["size"] == 1
    assert "special/plaindir" not in t
    assert e.stats()["commands"].get("mvDir") == 1
    assert rc.run("lsf", "-R", "jc:moveddir").out == "sub/\nsub/x?.txt\n"


def test_touch_existing_and_new(env):
    e, rc = env["emu"], env["rc"]
    e.reset_stats()
    rc.run("touch", "-t", "2020-01-02T03:04:05", "jc:copies/amp copy.txt")
    t = tree(e)
    assert t["copies/amp copy.txt"]["modified"] == 1577934245
    assert e.stats()["commands"].get("cphash") == 1
    rc.run("touch", "jc:touched/new file.txt")
    t = tree(e)
    assert t["touched/new file.txt"]["size"] == 0
    lsl = rc.run("lsl", "jc:copies").out
    assert "2020-01-02 03:04:05" in lsl


def test_link(env):
    e, rc = env["emu"], env["rc"]
    p = rc.run("link", "jc:special/big.bin")
    uri = e.tree(LOGIN)
    uri = {x["path"]: x for x in uri}["special/big.bin"]["public_uri"]
    assert uri and p.out.strip().endswith("/opin/io/downloadPublic/%s/%s" % (
        e.username(LOGIN), uri))


def test_delete(env):
    e, rc = env["emu"], env["rc"]
    rc.run("delete", "jc:copies")
    rc.run("delete", "jc:special", "--include", "hash#tag.txt")
    t = tree(e)
    assert t["copies/amp copy.txt"]["deleted"] is not None  # a trash tombstone
    assert t["special/hash#tag.txt"]["deleted"] is not None
    assert rc.run("lsf", "jc:copies").out == ""
    assert "hash#tag.txt" not in rc.run("lsf", "jc:special").out.split("\n")


def test_purge(env):
    e, rc = env["emu"], env["rc"]
    e.reset_stats()
    rc.run("purge", "jc:moveddir")
    t = tree(e)
    assert t["moveddir"]["deleted"] is not None
    assert t["moveddir/sub/x\uff1f.txt"]["deleted"] is not None
    assert e.stats()["commands"].get("dlDir") == 1
    assert "moveddir/" not in rc.run("lsf", "jc:").out


def test_cleanup_empties_trash(env):
    e, rc = env["emu"], env["rc"]
    assert any(x["deleted"] for x in e.tree(LOGIN))
    e.reset_stats()
    rc.run("cleanup", "jc:")
    assert e.stats()["requests"]["purge"] == 1
    t = tree(e)
    assert not [p for p, x in t.items() if x["deleted"]]
    assert "moveddir" not in t and "copies/amp copy.txt" not in t
    assert "copies" in t  # the folder itself was only emptied, never trashed


def test_long_job_with_five_second_tokens(env, tmp_path):
    """26 s of work (five token lifetimes) with 5 s access tokens: refreshes
    rotate, never invalid_grant."""
    e, rc = env["emu"], env["rc"]
    src = tmp_path / "many"
    src.mkdir()
    n = 13  # two 1 s round trips each: 26 s, five lifetimes of a token
    for i in range(n):
        (src / ("f%02d.txt" % i)).write_bytes(b"file %d\n" % i * (i + 1))
    e.set_knobs(token_lifetime=5, latency_ms=1000, latency_kinds="allocate,upload")
    rc.age_token()  # the first request refreshes and gets a 5 s token
    e.reset_stats()
    t0 = time.monotonic()
    try:
        p = rc.run("copy", str(src), "jc:long job", "--transfers", "1", "--checkers", "1",
                   "-v", timeout=170)
    finally:
        e.set_knobs(latency_ms=0, latency_kinds="*")
    took = time.monotonic() - t0
    assert took >= 25, took
    assert "invalid_grant" not in p.err and "couldn't fetch token" not in p.err, p.err
    s = e.stats()
    assert s["grant_errors"] == 0
    assert s["grants"].get("refresh_token", 0) >= 5, s["grants"]
    t = tree(e)
    for i in range(n):
        assert t["long job/f%02d.txt" % i]["md5"] == md5(b"file %d\n" % i * (i + 1))
    assert json.loads(rc.config()["token"])["refresh_token"]


def test_replayed_refresh_token_kills_family(env):
    """Keep last: the remote's session is dead afterwards."""
    e, rc = env["emu"], env["rc"]
    e.set_knobs(token_lifetime=3600)
    old = json.loads(rc.config()["token"])["refresh_token"]
    rc.age_token()
    rc.run("lsf", "jc:")
    new = json.loads(rc.config()["token"])["refresh_token"]
    assert new != old, "rclone should have rotated its refresh token"
    body = urllib.parse.urlencode({"client_id": "jottacli", "grant_type": "refresh_token",
                                   "refresh_token": old}).encode()
    st, _, data = e.request("POST", e.token_url, body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert st == 400 and json.loads(data) == {
        "error": "invalid_grant", "error_description": "Session doesn't have required client"}
    e.reset_stats()
    rc.age_token()
    p = rc.run("lsf", "jc:", check=False, timeout=60)
    assert p.returncode != 0
    assert "invalid_grant" in p.err and "Session doesn't have required client" in p.err, p.err
    s = e.stats()
    assert s["grant_errors"] >= 1 and s["grants"].get("refresh_token", 0) == 0
