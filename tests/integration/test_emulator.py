"""Direct HTTP tests of the Jottacloud emulator (tests/emulator/jottaemu).

Each behaviour the driver and rclone depend on is checked on the wire with
urllib/http.client, against docs/jottacloud-api.md.  Tests use their own login
names so they share one emulator without seeing each other's files.
"""

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu import Emulator, EmulatorError, JOTTAEMU  # noqa: E402
from helpers import md5_bytes as md5, run_threads, wait_for  # noqa: E402

MD5_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"


def q(name):
    """Percent-encode one server name for a URL path, as a careful client does."""
    return urllib.parse.quote(name, safe="")


@pytest.fixture(scope="module")
def emu(emulator):
    return emulator


@pytest.fixture(autouse=True)
def default_knobs(emu):
    yield
    if emu.alive():
        emu.reset_knobs()


class Client:
    """A logged-in user of the emulator, speaking the raw protocol."""

    _n = 0

    def __init__(self, emu, login=None):
        Client._n += 1
        self.emu = emu
        self.login = login or "user%d-%d" % (os.getpid(), Client._n)
        self.tok = emu.tokens(self.login)
        self.at = self.tok["access_token"]
        self.user = emu.username(self.login)
        self.root = "/jfs/%s/Jotta/Archive" % self.user

    def url(self, path, query=None):
        u = self.root + "".join("/" + q(p) for p in path.split("/") if p)
        if query:
            u += "?" + urllib.parse.urlencode(query)
        return u

    def get(self, path, query=None, headers=None):
        return self.emu.request("GET", self.url(path, query), token=self.at, headers=headers)

    def post(self, path, query=None, headers=None, raw=None):
        return self.emu.request("POST", raw or self.url(path, query), token=self.at,
                                headers=headers, body=b"")

    def post_doc(self, path, query=None, headers=None):
        """POST that must answer 200; the answer's XML document."""
        st, _, body = self.post(path, query, headers=headers)
        assert st == 200, (st, body[:400])
        return ET.fromstring(body)

    def xml(self, path, query=None, status=200):
        st, _, body = self.get(path, query)
        assert st == status, (st, body[:400])
        return ET.fromstring(body)

    def api(self, method, path, obj=None, headers=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        h = {"Content-Type": "application/json"} if obj is not None else {}
        h.update(headers or {})
        st, hd, data = self.emu.request(method, path, body=body, token=self.at, headers=h)
        return st, hd, (json.loads(data) if data else None)

    def allocate(self, path, content, modified="2024-03-04T08:09:10Z", created=None,
                 size=None, digest=None):
        st, _, js = self.api("POST", "/files/v1/allocate", {
            "bytes": len(content) if size is None else size, "created": created or modified,
            "md5": digest or md5(content), "modified": modified,
            "path": "/jfs/Jotta/Archive/" + path})
        assert st == 200, js
        return js

    def upload(self, path, content, **kw):
        a = self.allocate(path, content, **kw)
        if a["state"] == "COMPLETED":
            return a, None
        st, _, js = self.emu.request("POST", a["upload_url"], body=content[a["resume_pos"]:],
                                     token=self.at,
                                     headers={"Content-Type": "application/octet-stream"})
        assert st == 201, js
        return a, json.loads(js)

    def mkdir(self, path):
        st, _, body = self.post(path, {"mkDir": "true"})
        assert st == 200, body
        return ET.fromstring(body)

    def names(self, path=""):
        doc = self.xml(path)
        folders = [f.get("name") for f in doc.findall("./folders/folder")]
        files = [f.get("name") for f in doc.findall("./files/file")]
        return folders, files

    def tree(self):
        return {e["path"]: e for e in self.emu.tree(self.login)}


def err_code(body):
    return int(ET.fromstring(body).findtext("code"))


# ------------------------------------------------------------------ process and CLI

def test_ready_line_ca_and_server_json(emu):
    assert emu.url.startswith("http://127.0.0.1:")
    with open(os.path.join(emu.data_dir, "server.json")) as f:
        info = json.load(f)
    assert info["url"] == emu.url and info["port"] == emu.port
    with open(emu.ca_path) as f:
        assert "BEGIN CERTIFICATE" in f.read()


def test_help_documents_every_knob():
    out = subprocess.run([JOTTAEMU, "serve", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for opt in ("--latency-ms", "--bandwidth", "--error-rate", "--burst-429", "--retry-after",
                "--reset-rate", "--truncate-rate", "--outage", "--token-lifetime", "--seed",
                "--capacity", "--dedup", "--max-revisions", "--reject-basic-auth",
                "--error-echo-headers", "--error-kinds", "--reset-kinds", "/_emu/knobs", "/_emu/seed", "/_emu/stats"):
        assert opt in out, opt


def test_bad_knob_at_start_fails_fast(tmp_path):
    with pytest.raises(EmulatorError):
        Emulator(data_dir=tmp_path, knobs={"error_rate": 7})


def test_login_token_cli_and_restart_keeps_state(tmp_path):
    e = Emulator(data_dir=tmp_path / "d")
    try:
        out = subprocess.run([JOTTAEMU, "login-token", "--data", e.data_dir, "--user", "cli"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert "=" not in out and "+" not in out and "/" not in out
        doc = json.loads(base64.urlsafe_b64decode(out + "=" * (-len(out) % 4)))
        assert doc["username"] == "cli" and doc["realm"] == "jottacloud"
        assert doc["well_known_link"] == (e.url + "/auth/realms/jottacloud/.well-known/"
                                          "openid-configuration")
        assert doc["auth_token"]
        out2 = subprocess.run([JOTTAEMU, "login-token", "--data", e.data_dir, "--issuer",
                               "https://id.jottacloud.com"], capture_output=True, text=True,
                              check=True).stdout.strip()
        doc2 = json.loads(base64.urlsafe_b64decode(out2 + "=" * (-len(out2) % 4)))
        assert doc2["well_known_link"].startswith("https://id.jottacloud.com/auth/realms/")
        c = Client(e, "keeper")
        c.upload("persist/me.txt", b"still here")
        port = e.port
        assert e.stop() == 0
        assert not os.path.exists(os.path.join(e.data_dir, "server.json"))
        e.port = port
        e.start()
        assert e.port == port
        # Same access token, same file, same content after the restart.
        st, _, body = c.get("persist/me.txt", {"mode": "bin"})
        assert (st, body) == (200, b"still here")
    finally:
        assert e.stop() == 0
        e.close()


def test_seed_cli(tmp_path):
    e = Emulator(data_dir=tmp_path / "d")
    try:
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"user": "seeder", "entries": [
            {"path": "s/raw:colon", "content": "abc"}]}), encoding="utf-8")
        r = subprocess.run([JOTTAEMU, "seed", "--data", e.data_dir, str(spec)],
                           capture_output=True, text=True, check=True)
        assert "raw:colon" in r.stdout
        assert e.content("s/raw:colon", user="seeder") == b"abc"
    finally:
        e.close()


# ------------------------------------------------------------------ OAuth

def form(d):
    return urllib.parse.urlencode(d).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_discovery_uses_request_host(emu):
    st, _, body = emu.request("GET", "/auth/realms/jottacloud/.well-known/openid-configuration")
    doc = json.loads(body)
    assert doc["token_endpoint"] == emu.token_url
    assert doc["authorization_endpoint"].endswith("/protocol/openid-connect/auth")
    st, _, body = emu.request("GET", "/auth/realms/telia_se/.well-known/openid-configuration",
                              headers={"Host": "cloud-auth.telia.se"})
    doc = json.loads(body)
    assert doc["token_endpoint"] == ("http://cloud-auth.telia.se/auth/realms/telia_se/"
                                     "protocol/openid-connect/token")


def test_password_grant_single_use_and_expires_in_number(emu):
    emu.set_knobs(token_lifetime=123)
    tok = emu.login_token("pw")
    secret = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))["auth_token"]
    body = form({"client_id": "jottacli", "grant_type": "password", "password": secret,
                 "scope": "openid offline_access", "username": "pw"})
    st, hd, data = emu.request("POST", emu.token_url, body=body, headers=FORM)
    assert st == 200, data
    js = json.loads(data)
    assert js["expires_in"] == 123 and isinstance(js["expires_in"], int)
    assert js["token_type"] == "Bearer" and js["refresh_token"] and js["access_token"]
    assert int(hd["content-length"]) == len(data)
    st, _, data = emu.request("POST", emu.token_url, body=body, headers=FORM)
    assert st == 400 and json.loads(data)["error"] == "invalid_grant"


def refresh(emu, rt, basic=True, client="jottacli"):
    if basic:
        h = dict(FORM, Authorization="Basic " + base64.b64encode(
            (client + ":").encode()).decode())
        body = form({"grant_type": "refresh_token", "refresh_token": rt})
    else:
        h = FORM
        body = form({"client_id": client, "grant_type": "refresh_token", "refresh_token": rt})
    st, _, data = emu.request("POST", emu.token_url, body=body, headers=h)
    return st, json.loads(data)


def test_refresh_rotation_and_reuse_kills_family(emu):
    c = Client(emu)
    rt0 = c.tok["refresh_token"]
    st, t1 = refresh(emu, rt0, basic=True)
    assert st == 200 and t1["refresh_token"] != rt0
    st, t2 = refresh(emu, t1["refresh_token"], basic=False)
    assert st == 200
    # The new access token works.
    assert emu.request("GET", "/account/v1/customer", token=t2["access_token"])[0] == 200
    # Replaying an old refresh token is refused and kills the whole family.
    st, js = refresh(emu, rt0)
    assert st == 400 and js == {"error": "invalid_grant",
                                "error_description": "Session doesn't have required client"}
    st, js = refresh(emu, t2["refresh_token"])
    assert st == 400 and js["error"] == "invalid_grant"
    assert emu.request("GET", "/account/v1/customer", token=t2["access_token"])[0] == 401


def test_reject_basic_auth_knob(emu):
    c = Client(emu)
    emu.set_knobs(reject_basic_auth=True)
    st, js = refresh(emu, c.tok["refresh_token"], basic=True)
    assert st == 401 and js["error"] == "unauthorized_client"
    st, js = refresh(emu, c.tok["refresh_token"], basic=False)
    assert st == 200, js


def test_error_echo_headers_knob(emu):
    """Fault injection for log-redaction tests: error answers echo the request
    headers (Authorization included) only while the knob is on."""
    c = Client(emu)
    tok = c.tok["access_token"]
    st, _, body = emu.request("GET", "/jfs/nosuchuser", token=tok)
    assert st >= 400 and tok.encode() not in body
    emu.set_knobs(error_echo_headers=True)
    try:
        st, _, body = emu.request("GET", "/jfs/nosuchuser", token=tok)
        assert st >= 400 and ("Bearer " + tok).encode() in body
        st, _, body = emu.request("GET", "/account/v1/customer", token="not-a-token")
        assert st == 401 and b"Bearer not-a-token" in body
    finally:
        emu.set_knobs(error_echo_headers=False)


def test_refresh_grant_type_is_case_sensitive(emu):
    c = Client(emu)
    st, _, data = emu.request("POST", emu.token_url, headers=FORM, body=form(
        {"client_id": "jottacli", "grant_type": "REFRESH_TOKEN",
         "refresh_token": c.tok["refresh_token"]}))
    assert st == 400 and json.loads(data)["error"] == "unsupported_grant_type"


def test_authorization_code_grant(emu):
    redirect = "http://localhost:53682/"
    st, hd, _ = emu.request("GET", "/auth/realms/jottacloud/protocol/openid-connect/auth?"
                            + urllib.parse.urlencode({
                                "access_type": "offline", "client_id": "desktop",
                                "redirect_uri": redirect, "response_type": "code",
                                "scope": "openid jotta-default offline_access",
                                "state": "xyz", "login_hint": "coder"}))
    assert st == 302
    loc = urllib.parse.urlsplit(hd["location"])
    assert loc.netloc == "localhost:53682"
    params = dict(urllib.parse.parse_qsl(loc.query))
    assert params["state"] == "xyz"
    h = dict(FORM, Authorization="Basic " + base64.b64encode(b"desktop:").decode())
    body = form({"code": params["code"], "grant_type": "authorization_code",
                 "redirect_uri": redirect})
    st, _, data = emu.request("POST", emu.token_url, body=body, headers=h)
    assert st == 200, data
    at = json.loads(data)["access_token"]
    st, _, data = emu.request("GET", "/account/v1/customer", token=at)
    assert json.loads(data)["username"] == emu.username("coder")
    st, _, data = emu.request("POST", emu.token_url, body=body, headers=h)
    assert st == 400 and json.loads(data)["error"] == "invalid_grant"


def test_bearer_checked_everywhere(emu):
    c = Client(emu)
    for method, path in (("GET", c.root), ("GET", "/jfs/" + c.user),
                         ("POST", c.url("x", {"mkDir": "true"})),
                         ("GET", c.url("x", {"mode": "bin"}))):
        st, hd, body = emu.request(method, path, token="nope", body=b"")
        assert st == 401
        doc = ET.fromstring(body)
        assert doc.findtext("code") == "401"
        assert "BadCredentialsException" in doc.findtext("message")
    for method, path in (("GET", "/account/v1/customer"), ("POST", "/files/v1/allocate"),
                         ("POST", "/files/v1/purge_trash")):
        st, _, body = emu.request(method, path, body=b"{}")
        assert st == 401 and json.loads(body)["code"] == 401
    emu.expire_tokens(c.login)
    assert c.get("")[0] == 401


def test_short_token_lifetime_expires(emu):
    emu.set_knobs(token_lifetime=3)
    c = Client(emu)
    assert c.tok["expires_in"] == 3
    assert c.get("")[0] == 200
    time.sleep(3.3)          # not synchronisation: the token's 3 s lifetime must pass
    assert c.get("")[0] == 401
    st, t = refresh(emu, c.tok["refresh_token"])
    assert st == 200
    assert emu.request("GET", c.root, token=t["access_token"])[0] == 200


# ------------------------------------------------------------------ account documents

def test_customer_user_and_device_documents(emu):
    c = Client(emu)
    st, _, cust = c.api("GET", "/account/v1/customer")
    assert st == 200
    assert len(cust["username"]) == 24 and cust["username"].isalnum()
    assert cust["username"] == cust["username"].lower() and cust["username"] != c.login
    for k in ("email", "name", "account_type", "subscription_type", "usage", "quota",
              "write_locked", "read_locked", "locked_cause", "brand_code"):
        assert k in cust
    assert cust["quota"] == -1
    doc = ET.fromstring(emu.request("GET", "/jfs/" + c.user, token=c.at)[2])
    assert doc.tag == "user" and doc.findtext("capacity") == "-1"
    assert [d.findtext("name") for d in doc.findall("./devices/device")] == ["Jotta"]
    emu.set_knobs(capacity=5 * 2 ** 30)
    c.upload("q.bin", b"12345")
    doc = ET.fromstring(emu.request("GET", "/jfs/" + c.user, token=c.at)[2])
    assert doc.findtext("capacity") == str(5 * 2 ** 30) and doc.findtext("usage") == "5"
    assert c.api("GET", "/account/v1/customer")[2]["usage"] == 5
    dev = ET.fromstring(emu.request("GET", "/jfs/%s/Jotta" % c.user, token=c.at)[2])
    assert dev.tag == "device" and dev.findtext("type") == "JOTTA"
    assert dev.findtext("user") == c.user
    mps = {m.findtext("name") for m in dev.findall("./mountPoints/mountPoint")}
    assert mps == {"Archive", "Sync", "Trash", "Shared", "Latest", "Links"}
    # Names match case-insensitively, the stored case is shown.
    dev = ET.fromstring(emu.request("GET", "/jfs/%s/jOTTA" % c.user, token=c.at)[2])
    assert dev.findtext("name") == "Jotta"
    st, _, body = emu.request("GET", "/jfs/%s/Nope" % c.user, token=c.at)
    assert st == 404 and err_code(body) == 404
    st, _, body = emu.request("GET", "/jfs/%s/Jotta/Nope" % c.user, token=c.at)
    assert st == 404 and "NoSuchMountPointException" in body.decode()
    st, _, body = emu.request("GET", "/jfs/someoneelse/Jotta", token=c.at)
    assert st == 400 and "Username not found in url" in body.decode()


def test_quota_enforced(emu):
    c = Client(emu)
    emu.set_knobs(capacity=10)
    st, _, js = c.api("POST", "/files/v1/allocate", {
        "bytes": 11, "md5": md5(b"x" * 11), "path": "/jfs/Jotta/Archive/big",
        "modified": "2024-01-01T00:00:00Z", "created": "2024-01-01T00:00:00Z"})
    assert st == 507 and js["error_id"] == "QuotaExceededException"


def test_create_device_and_mountpoint(emu):
    c = Client(emu)
    st, _, body = emu.request("POST", "/jfs/%s/laptop?type=WORKSTATION" % c.user, token=c.at)
    assert st == 200 and ET.fromstring(body).findtext("type") == "WORKSTATION"
    st, _, body = emu.request("POST", "/jfs/%s/laptop/Docs" % c.user, token=c.at)
    assert st == 200 and ET.fromstring(body).tag == "mountPoint"
    dev = ET.fromstring(emu.request("GET", "/jfs/%s/laptop" % c.user, token=c.at)[2])
    assert [m.findtext("name") for m in dev.findall("./mountPoints/mountPoint")] == ["Docs"]
    st, _, _ = emu.request("POST", "/jfs/%s/Jotta/Custom" % c.user, token=c.at)
    assert st == 400


# ------------------------------------------------------------------ listings

def test_folder_and_file_documents(emu):
    c = Client(emu)
    c.mkdir("d/empty")
    c.upload("d/f.txt", b"hello world\n", modified="2024-03-04T08:09:10Z")
    root = c.xml("")
    assert root.tag == "mountPoint" and root.findtext("name") == "Archive"
    assert root.findtext("path") == "/%s/Jotta" % c.user
    d = c.xml("d")
    assert d.tag == "folder" and d.get("name") == "d"
    assert d.findtext("path") == "/%s/Jotta/Archive" % c.user
    assert [f.get("name") for f in d.findall("./folders/folder")] == ["empty"]
    f = d.find("./files/file")
    cur = f.find("currentRevision")
    assert cur.findtext("state") == "COMPLETED" and cur.findtext("size") == "12"
    assert cur.findtext("md5") == md5(b"hello world\n")
    assert cur.findtext("modified") == "2024-03-04-T08:09:10Z"
    assert cur.findtext("mime") == "text/plain"
    meta = d.find("metadata")
    assert (meta.get("num_folders"), meta.get("num_files"), meta.get("total")) == ("1", "1", "2")
    empty = c.xml("d/empty")
    assert empty.find("folders") is None and empty.find("files") is None
    fd = c.xml("d/f.txt")
    assert fd.tag == "file" and fd.findtext("path") == "/%s/Jotta/Archive/d" % c.user
    assert fd.get("deleted") is None and fd.get("uuid")
    st, _, body = c.get("d/missing")
    assert st == 404 and err_code(body) == 404 and "NoSuchPathException" in body.decode()


def liststream_check(body):
    """Parse liststream strictly and check the rclone consistency rules (docs 5.4)."""
    text = body.decode("utf-8")
    assert ">\n<" not in text.split("?>", 1)[1] and "  " not in text
    doc = ET.fromstring(body)
    seen_folders = []
    files = []
    for el in doc.iter():
        if el.tag == "folder":
            p = el.findtext("path")
            assert p not in seen_folders, "folder listed twice: " + p
            seen_folders.append(p)
        elif el.tag == "file":
            parent = el.findtext("path")
            assert parent in seen_folders, "file before its folder: " + parent
            files.append(parent + "/" + el.findtext("filename"))
            assert el.findtext("modified").endswith("Z")
            assert "T" in el.findtext("created")
    stats = doc.find("stats")
    assert int(stats.findtext("folders")) == len(seen_folders)
    assert int(stats.findtext("files")) == len(files)
    return seen_folders, files


def test_liststream_order_and_stats(emu):
    c = Client(emu)
    emu.seed([
        {"path": "a/b/c/deep.txt", "content": "1"},
        {"path": "a/top.txt", "content": "2"},
        {"path": "a/empty", "folder": True},
        {"path": "a/gone.txt", "content": "3", "deleted": True},
        {"path": "a/trashed-dir/x", "content": "4"},
        {"path": "a/trashed-dir", "folder": True, "deleted": True},
        {"path": "a/half.bin", "revisions": [{"size": 10, "state": "INCOMPLETE"}]},
        {"path": "z.txt", "content": "5"},
    ], user=c.login)
    st, _, body = c.get("", {"mode": "liststream"})
    assert st == 200
    folders, files = liststream_check(body)
    assert folders[0] == "/Archive"
    assert set(folders) == {"/Archive", "/Archive/a", "/Archive/a/b", "/Archive/a/b/c",
                            "/Archive/a/empty"}
    assert sorted(files) == ["/Archive/a/b/c/deep.txt", "/Archive/a/top.txt", "/Archive/z.txt"]
    st, _, body = c.get("a/b", {"mode": "liststream"})
    folders, files = liststream_check(body)
    assert folders == ["/Archive/a/b", "/Archive/a/b/c"]
    st, _, body = c.get("nope", {"mode": "liststream"})
    assert st == 404 and err_code(body) == 404


# ------------------------------------------------------------------ downloads

def test_download_ranges_and_revisions(emu):
    c = Client(emu)
    data = bytes(range(256)) * 40
    c.upload("r/data.bin", data)
    st, hd, body = c.get("r/data.bin", {"mode": "bin"})
    assert st == 200 and body == data and int(hd["content-length"]) == len(data)
    for rng, want in (("bytes=2-6", (2, 6)), ("bytes=100-", (100, len(data) - 1)),
                      ("bytes=-10", (len(data) - 10, len(data) - 1)),
                      ("bytes=10000-20000", (10000, len(data) - 1))):
        st, hd, body = c.get("r/data.bin", {"mode": "bin"}, headers={"Range": rng})
        assert st == 206, rng
        assert hd["content-range"] == "bytes %d-%d/%d" % (want[0], want[1], len(data))
        assert body == data[want[0]:want[1] + 1]
    st, hd, body = c.get("r/data.bin", {"mode": "bin"}, headers={"Range": "bytes=20000-"})
    assert st == 416 and err_code(body) == 416 and hd["content-range"] == "bytes */%d" % len(data)
    c.upload("r/data.bin", b"second")
    st, _, body = c.get("r/data.bin", {"mode": "bin", "revision": "1"})
    assert (st, body) == (200, data)
    st, _, body = c.get("r/data.bin", {"mode": "bin"})
    assert body == b"second"
    st, _, body = c.get("r/data.bin", {"mode": "bin", "revision": "9"})
    assert st == 404
    st, _, body = c.get("r/none.bin", {"mode": "bin"})
    assert st == 404 and err_code(body) == 404


# ------------------------------------------------------------------ uploads

def test_upload_json_parents_and_times(emu):
    c = Client(emu)
    data = b"x" * 1000
    a, up = c.upload("new/deep/dir/file.bin", data, modified="2021-05-06T07:08:09+02:00",
                     created="2020-01-01T00:00:00Z")
    assert a["state"] == "INCOMPLETE" and a["resume_pos"] == 0 and a["bytes"] == 1000
    assert a["name"] == "file.bin" and a["upload_url"].startswith(emu.url + "/")
    assert up["bytes"] == 1000 and up["md5"] == md5(data)
    assert up["path"] == "/jfs/Jotta/Archive/new/deep/dir/file.bin"
    assert up["modified"] == 1620277689000 and up["content_id"]
    cur = c.xml("new/deep/dir/file.bin").find("currentRevision")
    assert cur.findtext("modified") == "2021-05-06-T05:08:09Z"
    assert cur.findtext("created") == "2020-01-01-T00:00:00Z"
    assert c.names("new/deep")[0] == ["dir"]


def test_instant_upload(emu):
    c = Client(emu)
    data = os.urandom(5000)
    c.upload("i/one.bin", data)
    emu.reset_stats()
    # Same content at the same path: COMPLETED, new times applied.
    a = c.allocate("i/one.bin", data, modified="2030-01-01T00:00:00Z")
    assert a["state"] == "COMPLETED"
    assert c.xml("i/one.bin").find("currentRevision/modified").text == "2030-01-01-T00:00:00Z"
    # Same content elsewhere in the account: COMPLETED too.
    a = c.allocate("i/elsewhere/two.bin", data)
    assert a["state"] == "COMPLETED"
    assert c.tree()["i/elsewhere/two.bin"]["md5"] == md5(data)
    s = emu.stats()
    assert s["requests"]["upload"] == 0 and s["instant_uploads"] == 2
    # Another account does not see this content.
    other = Client(emu)
    assert other.allocate("x.bin", data)["state"] == "INCOMPLETE"
    emu.set_knobs(dedup="off")
    assert c.allocate("i/three.bin", data)["state"] == "INCOMPLETE"


def test_resume_after_cut_off_upload(emu):
    c = Client(emu)
    data = os.urandom(300000)
    a = c.allocate("res/big.bin", data)
    # Send only part of the body, then drop the connection.
    u = urllib.parse.urlsplit(a["upload_url"])
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (u.path, c.at, len(data))).encode() + data[:123456])
    s.close()
    # the server notices the closed connection asynchronously
    a2 = wait_for(lambda: (lambda a: a if a["resume_pos"] == 123456 else None)(
        c.allocate("res/big.bin", data)), 10, "the cut upload to resume at 123456")
    assert a2["state"] == "INCOMPLETE" and a2["resume_pos"] == 123456
    assert a2["upload_id"] == a["upload_id"]
    f = c.xml("res/big.bin")
    assert f.find("currentRevision") is None
    assert f.find("latestRevision/state").text == "INCOMPLETE"
    assert f.find("latestRevision/size").text == "123456"
    # Invisible in listings until completed (no currentRevision).
    assert c.xml("res").find("./files/file/currentRevision") is None
    st, _, body = emu.request("POST", a2["upload_url"], body=data[123456:], token=c.at,
                              headers={"Range": "bytes=123456-299999"})
    assert st == 201
    js = json.loads(body)
    assert js["bytes"] == 300000 and js["md5"] == md5(data)
    assert c.get("res/big.bin", {"mode": "bin"})[2] == data


def test_resume_after_injected_reset(emu):
    c = Client(emu)
    data = os.urandom(2 * 2 ** 20)
    emu.set_knobs(reset_rate=1.0, reset_kinds="upload", seed=3)
    a = c.allocate("rr/x.bin", data)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        emu.request("POST", a["upload_url"], body=data, token=c.at)
    emu.set_knobs(reset_rate=0)
    # the server stores the received part once it notices the reset
    a2 = wait_for(lambda: (lambda a: a if a["resume_pos"] > 0 else None)(
        c.allocate("rr/x.bin", data)), 10, "the reset upload to have a resume position")
    assert 0 < a2["resume_pos"] < len(data)
    st, _, body = emu.request("POST", a2["upload_url"], body=data[a2["resume_pos"]:],
                              token=c.at, headers={"Range": "bytes=%d-%d" % (
                                  a2["resume_pos"], len(data) - 1)})
    assert st == 201 and json.loads(body)["md5"] == md5(data)
    assert emu.stats()["faults"]["reset"] >= 1


def test_partial_chunk_420_then_complete(emu):
    c = Client(emu)
    data = b"abcdefghij" * 100
    a = c.allocate("p/chunks.bin", data)
    st, _, body = emu.request("POST", a["upload_url"], body=data[:400], token=c.at)
    assert st == 420 and json.loads(body)["error_id"] == "IncompleteUploadOpenApiException"
    assert c.allocate("p/chunks.bin", data)["resume_pos"] == 400
    st, _, body = emu.request("POST", a["upload_url"], body=data[400:], token=c.at,
                              headers={"Range": "bytes=400-999"})
    assert st == 201


def test_md5_mismatch_is_corrupt(emu):
    c = Client(emu)
    c.upload("cor/f.bin", b"good")
    a = c.allocate("cor/f.bin", b"1234", digest=md5(b"abcd"))
    st, _, body = emu.request("POST", a["upload_url"], body=b"1234", token=c.at)
    assert 400 <= st < 500 and json.loads(body)["error_id"] == "CorruptUploadOpenApiException"
    f = c.xml("cor/f.bin")
    assert f.find("latestRevision/state").text == "CORRUPT"
    assert f.find("currentRevision/md5").text == md5(b"good")


def test_overwrite_makes_revisions_and_keeps_five(emu):
    c = Client(emu)
    for i in range(7):
        c.upload("v/f.txt", b"version %d" % i)
    f = c.xml("v/f.txt")
    assert f.find("currentRevision/number").text == "7"
    older = [r.findtext("number") for r in f.findall("./revisions/revision")]
    assert older == ["6", "5", "4", "3"]
    assert c.get("v/f.txt", {"mode": "bin", "revision": "4"})[2] == b"version 3"


def test_seeded_revisions_are_numbered_in_order(emu):
    """A seed entry with a revisions list makes revisions 1..n, the last one
    current, each downloadable by its number (and so does a later seed)."""
    c = Client(emu)
    emu.seed([{"path": "sv/f.txt", "revisions": [{"content": "one"}, {"content": "two!"},
                                                 {"content": "three", "modified":
                                                  "2020-03-03T03:03:03Z"}]}], user=c.login)
    f = c.xml("sv/f.txt")
    assert f.find("currentRevision/number").text == "3"
    assert f.find("currentRevision/md5").text == md5(b"three")
    assert f.find("currentRevision/modified").text == "2020-03-03-T03:03:03Z"
    assert [r.findtext("number") for r in f.findall("./revisions/revision")] == ["2", "1"]
    assert c.get("sv/f.txt", {"mode": "bin"})[2] == b"three"
    for n, want in (("1", b"one"), ("2", b"two!"), ("3", b"three")):
        assert c.get("sv/f.txt", {"mode": "bin", "revision": n})[2] == want, n
    assert c.tree()["sv/f.txt"]["revision"] == 3
    emu.seed([{"path": "sv/f.txt", "content": "four"}], user=c.login)
    f = c.xml("sv/f.txt")
    assert f.find("currentRevision/number").text == "4"
    assert c.get("sv/f.txt", {"mode": "bin"})[2] == b"four"


def test_zero_byte_upload(emu):
    c = Client(emu)
    a, up = c.upload("z/empty", b"")
    assert up["bytes"] == 0 and up["md5"] == MD5_EMPTY
    assert c.get("z/empty", {"mode": "bin"})[:3:2] == (200, b"")


# ------------------------------------------------------------------ commands

def test_mkdir_is_recursive_and_idempotent(emu):
    c = Client(emu)
    doc = c.mkdir("m/a/b")
    assert doc.tag == "folder" and doc.get("name") == "b"
    c.mkdir("m/a/b")
    c.mkdir("M/A")  # case-insensitive, case-preserving
    assert c.names("m")[0] == ["a"] and c.names("")[0] == ["m"]
    c.upload("m/file", b"f")
    st, _, body = c.post("m/file", {"mkDir": "true"})
    assert st == 400


def test_trash_tombstones_view_and_purge(emu):
    c = Client(emu)
    c.upload("t/keep.txt", b"k")
    c.upload("t/del.txt", b"d")
    c.upload("t/dir/inner.txt", b"i")
    st, _, body = c.post("t/del.txt", {"dl": "true"})
    assert st == 200
    f = c.xml("t/del.txt")  # a tombstone answers 200 with deleted
    assert f.get("deleted") and f.get("deleted") != "" and f.get("deleted").endswith("Z")
    st, _, _ = c.post("t/dir", {"dlDir": "true"})
    assert st == 200
    t = c.xml("t")
    by = {e.get("name"): e for e in t.iter() if e.get("name")}
    assert by["del.txt"].get("deleted") and by["dir"].get("deleted")
    assert by["keep.txt"].get("deleted") is None
    inner = c.xml("t/dir")
    assert inner.get("deleted") and inner.find("./files/file").get("deleted")
    trash = ET.fromstring(emu.request("GET", "/jfs/%s/Jotta/Trash" % c.user, token=c.at)[2])
    items = {e.get("name"): e for e in trash.iter() if e.get("contextType") == "TRASH"}
    assert set(items) == {"del.txt", "dir"}
    assert items["del.txt"].findtext("abspath") == "/%s/Jotta/Archive/t" % c.user
    # Missing paths: dl answers 2xx, rm 404.
    assert c.post("t/never", {"dl": "true"})[0] == 200
    st, _, body = c.post("t/never", {"rm": "true"})
    assert st == 404 and err_code(body) == 404
    st, _, body = c.api("POST", "/files/v1/purge_trash")
    assert st == 200 and body == {"folders": 1, "files": 1}
    assert c.get("t/del.txt")[0] == 404 and c.get("t/dir")[0] == 404
    assert c.names("t") == ([], ["keep.txt"])


def test_upload_revives_tombstone(emu):
    c = Client(emu)
    c.upload("rv/a.txt", b"one")
    c.post("rv", {"dlDir": "true"})
    c.upload("rv/a.txt", b"two")
    assert c.xml("rv").get("deleted") is None
    f = c.xml("rv/a.txt")
    assert f.get("deleted") is None and f.find("currentRevision/md5").text == md5(b"two")


def test_rm_and_rmdir_are_permanent(emu):
    c = Client(emu)
    c.upload("h/a.txt", b"a")
    c.upload("h/d/b.txt", b"b")
    assert c.post("h/a.txt", {"rm": "true"})[0] == 200
    assert c.post("h/d", {"rmDir": "true"})[0] == 200
    assert c.get("h/a.txt")[0] == 404 and c.get("h/d")[0] == 404
    assert c.post("h/d", {"rmDir": "true"})[0] == 404
    # rmDir on the original path of a trashed folder removes it for good.
    c.upload("h/e/c.txt", b"c")
    c.post("h/e", {"dlDir": "true"})
    assert c.post("h/e", {"rmDir": "true"})[0] == 200
    assert c.get("h/e")[0] == 404


def test_mv_cp_and_overwrite(emu):
    c = Client(emu)
    c.upload("mv/a.txt", b"aaa")
    c.upload("mv/b.txt", b"bbb")
    dst = "/%s/Jotta/Archive/mv/new dir/moved.txt" % c.user
    doc = c.post_doc("mv/a.txt", {"mv": dst})
    assert doc.get("name") == "moved.txt" and doc.get("deleted") is None
    assert doc.find("currentRevision/state").text == "COMPLETED"
    assert c.get("mv/a.txt")[0] == 404
    assert c.get("mv/new dir/moved.txt", {"mode": "bin"})[2] == b"aaa"
    # mv onto an existing live file overwrites it (new revision).
    c.post_doc("mv/b.txt", {"mv": dst})
    assert c.get("mv/new dir/moved.txt", {"mode": "bin"})[2] == b"bbb"
    assert c.xml("mv/new dir/moved.txt").find("currentRevision/number").text == "2"
    # cp keeps the source; form-decoded destination ('+' is a space in a query value).
    raw = c.url("mv/new dir/moved.txt") + "?cp=" + urllib.parse.quote_plus(
        "/%s/Jotta/Archive/mv/copy one.txt" % c.user)
    st, _, body = c.post(None, raw=raw)
    assert st == 200 and ET.fromstring(body).get("name") == "copy one.txt"
    assert c.get("mv/copy one.txt", {"mode": "bin"})[2] == b"bbb"
    # Case-only rename.
    st, _, body = c.post("mv/copy one.txt", {"mv": "/%s/Jotta/Archive/mv/COPY ONE.txt" % c.user})
    assert st == 200 and "COPY ONE.txt" in c.names("mv")[1]
    # Missing source.
    st, _, body = c.post("mv/none.txt", {"mv": dst})
    assert st == 404 and "NoSuchFileException" in body.decode()
    # mv of a folder with the file verb: 404.
    assert c.post("mv/new dir", {"mv": dst + "2"})[0] == 404


def test_cp_onto_trashed_file_quirk_and_cphash_restore(emu):
    c = Client(emu)
    c.upload("q/src.txt", b"source")
    c.upload("q/dst.txt", b"old")
    c.post("q/dst.txt", {"dl": "true"})
    doc = c.post_doc("q/src.txt", {"cp": "/%s/Jotta/Archive/q/dst.txt" % c.user})
    assert doc.get("deleted"), "copy onto a trashed file stays in the trash (docs 8.5)"
    # cphash with the copy's size/md5 restores it; header names are case-insensitive.
    doc = c.post_doc("q/dst.txt", {"cphash": "true"}, headers={
        "jsize": "6", "JMD5": md5(b"source"), "Jcreated": "2020-01-02-T03:04:05Z",
        "jModified": "2020-01-02-T03:04:05Z"})
    assert doc.get("deleted") is None
    assert doc.find("currentRevision/modified").text == "2020-01-02-T03:04:05Z"
    # Unknown content: 404 (an upload is needed).
    st, _, body = c.post("q/other.txt", {"cphash": "true"}, headers={
        "Jsize": "3", "Jmd5": md5(b"zzz")})
    assert st == 404 and err_code(body) == 404
    # Known content at a new path: created by dedup.
    st, _, body = c.post("q/dedup.txt", {"cphash": "true"}, headers={
        "Jsize": "6", "Jmd5": md5(b"source"), "Jmodified": "2021-01-01-T00:00:00Z"})
    assert st == 200 and c.get("q/dedup.txt", {"mode": "bin"})[2] == b"source"


def test_mvdir(emu):
    c = Client(emu)
    c.upload("md/src/a.txt", b"a")
    c.upload("md/src/sub/b.txt", b"b")
    dest = "/%s/Jotta/Archive/md/new/dst" % c.user
    # Without the trailing slash on the source: 404.
    st, _, _ = c.post("md/src", {"mvDir": dest})
    assert st == 404
    st, _, body = c.post(None, raw=c.url("md/src") + "/?" + urllib.parse.urlencode(
        {"mvDir": dest}))
    assert st == 200 and ET.fromstring(body).get("name") == "dst"
    assert c.get("md/src")[0] == 404
    assert c.get("md/new/dst/sub/b.txt", {"mode": "bin"})[2] == b"b"
    c.mkdir("md/other")
    st, _, body = c.post(None, raw=c.url("md/other") + "/?" + urllib.parse.urlencode(
        {"mvDir": dest}))
    assert st == 400 and "UniqueFileException" in body.decode()


def test_share(emu):
    c = Client(emu)
    c.upload("s/f.txt", b"share me")
    st, _, body = c.get("s/f.txt", {"mode": "enableShare"})
    doc = ET.fromstring(body)
    uri = doc.findtext("publicURI")
    assert st == 200 and len(uri) == 32 and doc.findtext("publicSharePath")
    assert c.xml("s/f.txt").findtext("publicURI") == uri
    st, _, body = c.get("s/f.txt", {"mode": "disableShare"})
    assert ET.fromstring(body).find("publicURI") is None
    assert emu.request("POST", c.url("s/f.txt", {"mode": "enableShare"}),
                       token=c.at, body=b"")[0] == 500


def test_post_without_command_is_500(emu):
    c = Client(emu)
    c.upload("n/f", b"x")
    for query in (None, {"restore": "true"}, {"dl": "false"}):
        st, _, body = c.post("n/f", query)
        assert st == 500 and err_code(body) == 500
        assert "missing multipart content" in body.decode()


# ------------------------------------------------------------------ names and paths

def test_case_insensitive_case_preserving(emu):
    c = Client(emu)
    c.upload("Case/Hello.Doc", b"1")
    assert c.get("case/hello.doc", {"mode": "bin"})[2] == b"1"
    c.upload("CASE/HELLO.DOC", b"2")  # the same file, a new revision
    assert c.names("") == (["Case"], [])
    assert c.names("case") == ([], ["Hello.Doc"])
    assert c.xml("case/hello.doc").find("currentRevision/number").text == "2"


def test_name_length_counts_utf16_units(emu):
    c = Client(emu)
    ok = "a" * 255
    c.upload("len/" + ok, b"x")
    st, _, js = c.api("POST", "/files/v1/allocate", {
        "bytes": 1, "md5": md5(b"x"), "path": "/jfs/Jotta/Archive/len/" + "a" * 254 + "\U0001F600",
        "modified": "2024-01-01T00:00:00Z", "created": "2024-01-01T00:00:00Z"})
    assert st == 400 and "255" in js["message"]
    st, _, body = c.get("len/" + "b" * 256)
    assert st == 400 and "InvalidArgumentException" in body.decode()
    st, _, body = c.post("len/" + "é" * 256, {"mkDir": "true"})
    assert st == 400 and err_code(body) == 400


def test_path_decoding_rules(emu):
    c = Client(emu)
    c.upload("enc/a+b", b"plus")
    c.upload("enc/pct%zz", b"pct")
    c.upload("enc/semi", b"semi")
    # %2B is a '+'.
    assert c.get("enc/a+b", {"mode": "bin"})[2] == b"plus"
    # A raw '+' in the path is refused.
    st, _, body = emu.request("GET", c.root + "/enc/a+b?mode=bin", token=c.at)
    assert st == 400 and "Unable to validate decoded path" in body.decode()
    # ';' starts servlet path parameters: 'semi;x' is looked up as 'semi'.
    st, _, body = emu.request("GET", c.root + "/enc/semi;x?mode=bin", token=c.at)
    assert (st, body) == (200, b"semi")
    # %25 followed by two hex digits (double encoding): a plain-text 400.
    st, hd, body = emu.request("GET", c.root + "/enc/a%2520b", token=c.at)
    assert (st, body) == (400, b"400 Bad request")
    assert not hd["content-type"].startswith("application/xml")
    # %25 followed by anything else is a literal '%'.
    st, _, body = emu.request("GET", c.root + "/enc/pct%25zz?mode=bin", token=c.at)
    assert (st, body) == (200, b"pct")
    # Control characters.
    st, _, body = emu.request("GET", c.root + "/enc/x%01y", token=c.at)
    assert st == 400 and err_code(body) == 400
    # An encoded slash inside a name.
    assert emu.request("GET", c.root + "/enc/a%2Fb", token=c.at)[0] == 400
    # Trailing slash is ignored on GET.
    assert emu.request("GET", c.root + "/enc/", token=c.at)[0] == 200


def test_non_canonical_seeded_names(emu):
    c = Client(emu)
    raw = ['msf:1.jpg', 'q?*"<>|', "x\u201b41y", "a:b", "a\uff1ab", "hash#amp&eq=",
           "pct%41"]
    emu.seed([{"path": "raw/" + n, "content": n} for n in raw], user=c.login)
    assert sorted(c.names("raw")[1]) == sorted(raw)
    for n in raw:
        if "%41" in n:
            continue  # reaching it needs %2541, which the service refuses
        assert c.get("raw/" + n, {"mode": "bin"})[2] == n.encode(), n
    assert emu.request("GET", c.url("raw/pct%41"), token=c.at)[0] == 400


# ------------------------------------------------------------------ errors and HTTP

def test_bad_requests_get_service_errors(emu):
    c = Client(emu)
    s = socket.create_connection(("127.0.0.1", emu.port))
    s.sendall(b"GARBAGE\r\n\r\n")
    data = recv_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.") and b"<error>" in data and b"Traceback" not in data
    st, _, js = c.api("POST", "/files/v1/allocate", None, headers={})
    assert st == 400 and js["code"] == 400
    st, _, body = emu.request("POST", "/files/v1/allocate", body=b"{not json", token=c.at)
    assert st == 400 and json.loads(body)["error_id"]
    for bad in ({"bytes": 2 ** 63}, {"bytes": -1}, {"modified": "2024-13-01T00:00:00Z"},
                {"modified": 10 ** 20}, {"md5": "xyz"}, {"path": "/jfs/Jotta"}):
        req = {"bytes": 1, "md5": md5(b"x"), "path": "/jfs/Jotta/Archive/edge",
               "modified": "2024-01-01T00:00:00Z"}
        req.update(bad)
        st, _, js = c.api("POST", "/files/v1/allocate", req)
        assert st == 400 and js["code"] == 400, (bad, js)
    a = c.allocate("old.txt", b"x", modified="1960-01-01T00:00:00Z")
    assert a["state"] == "INCOMPLETE"
    st, _, body = emu.request("GET", "/files/v1/nothing", token=c.at)
    assert st == 404 and json.loads(body)["code"] == 404
    st, _, body = emu.request("POST", "/files/v1/upload/nope", body=b"x", token=c.at)
    assert st == 404
    c.mkdir("bad")
    st, _, body = c.get("bad", {"mode": "weird"})
    assert st == 400 and err_code(body) == 400
    assert "Traceback" not in emu.stderr()


def test_keep_alive_and_content_length_everywhere(emu):
    c = Client(emu)
    c.upload("ka/f", b"data")
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    h = {"Authorization": "Bearer " + c.at}
    for method, path, extra in (("GET", c.url("ka"), {}), ("GET", c.url("ka/f"), {}),
                                ("GET", c.url("ka/f", {"mode": "bin"}), {"Range": "bytes=1-2"}),
                                ("GET", c.url("ka/none"), {}),
                                ("POST", c.url("ka/f", {"dl": "true"}), {}),
                                ("POST", c.url("ka/none", {"dl": "true"}), {}),
                                ("GET", "/account/v1/customer", {}),
                                ("GET", "/auth/realms/jottacloud/protocol/openid-connect/auth"
                                 "?response_type=code&client_id=desktop&redirect_uri=http://x/",
                                 {})):
        conn.request(method, path, body=b"" if method == "POST" else None,
                     headers=dict(h, **extra))
        r = conn.getresponse()
        body = r.read()
        assert r.getheader("Content-Length") == str(len(body)), (path, r.status)
    conn.close()


def test_concurrent_requests(emu):
    c = Client(emu)
    errors = []

    def worker(i):
        try:
            data = os.urandom(10000 + i)
            c.upload("conc/f%d" % i, data)
            st, _, body = c.get("conc/f%d" % i, {"mode": "bin"})
            assert body == data
            assert c.get("conc")[0] == 200
        except Exception as e:  # collected and reported below
            errors.append(repr(e))
    run_threads(worker, 16, 60)
    assert not errors, errors
    assert len(c.names("conc")[1]) == 16


# ------------------------------------------------------------------ faults

def test_latency_and_kinds(emu):
    c = Client(emu)
    emu.set_knobs(latency_ms=600, latency_kinds="folder")
    t0 = time.monotonic()
    c.get("")
    assert time.monotonic() - t0 >= 0.6
    t0 = time.monotonic()
    emu.request("GET", "/account/v1/customer", token=c.at)
    assert time.monotonic() - t0 < 0.5


def test_burst_429_with_retry_after(emu):
    c = Client(emu)
    emu.set_knobs(burst_429=2, retry_after=7)
    for _ in range(2):
        st, hd, body = c.get("")
        assert st == 429 and hd["retry-after"] == "7" and err_code(body) == 429
    assert c.get("")[0] == 200
    assert emu.stats()["faults"]["429"] >= 2


def test_error_rate_only_for_chosen_kinds(emu):
    c = Client(emu)
    c.upload("e/f", b"x")
    emu.set_knobs(error_rate=1.0, error_kinds="download", error_status=502)
    st, _, body = c.get("e/f", {"mode": "bin"})
    assert st == 502 and err_code(body) == 502
    assert c.get("e")[0] == 200
    st, _, body = c.api("GET", "/account/v1/customer")
    assert st == 200
    # The control endpoint is never faulted.
    emu.set_knobs(error_kinds="*")
    assert emu.stats()["faults"]["error"] >= 1


def test_reset_and_truncate_downloads(emu):
    c = Client(emu)
    data = os.urandom(200000)
    c.upload("rt/f", data)
    emu.set_knobs(reset_rate=1.0, reset_kinds="download")
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        c.get("rt/f", {"mode": "bin"})
    emu.set_knobs(reset_rate=0, truncate_rate=1.0, truncate_kinds="download")
    with pytest.raises(http.client.IncompleteRead):
        c.get("rt/f", {"mode": "bin"})
    emu.set_knobs(truncate_rate=0)
    assert c.get("rt/f", {"mode": "bin"})[2] == data


def test_outage_switch_window_and_503_mode(emu):
    c = Client(emu)
    emu.set_knobs(outage=True)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        c.get("")
    assert emu.stats()["requests"]  # control still answers during an outage
    emu.set_knobs(outage_mode="503")
    assert c.get("")[0] == 503
    emu.set_knobs(outage=False, outage_mode="reset", outage_window="2:2")
    t0 = time.monotonic()
    assert c.get("")[0] == 200
    # not synchronisation: the window is wall time; these sleeps step into and past it
    time.sleep(max(0, 2.5 - (time.monotonic() - t0)))
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        c.get("")
    time.sleep(max(0, 4.5 - (time.monotonic() - t0)))
    assert c.get("")[0] == 200


def test_outage_at_start(tmp_path):
    with Emulator(data_dir=tmp_path / "d", knobs={"outage_window": "0:3"}) as e:
        t0 = time.monotonic()
        assert e.knobs()["outage_active"] is True
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            e.request("GET", "/auth/realms/jottacloud/.well-known/openid-configuration")
        time.sleep(max(0, 3.2 - (time.monotonic() - t0)))   # past the 3 s window (wall time)
        assert e.request("GET", "/auth/realms/jottacloud/.well-known/"
                              "openid-configuration")[0] == 200


def test_bandwidth_cap(emu):
    c = Client(emu)
    data = os.urandom(200000)
    c.upload("bw/f", data)
    emu.set_knobs(bandwidth=400000, bandwidth_kinds="download")
    t0 = time.monotonic()
    assert c.get("bw/f", {"mode": "bin"})[2] == data
    assert time.monotonic() - t0 >= 0.4


def test_seeded_fault_sequence_repeats(emu):
    c = Client(emu)

    def run():
        emu.set_knobs(seed=42, error_rate=0.5, error_kinds="folder")
        out = [c.get("")[0] for _ in range(20)]
        emu.set_knobs(error_rate=0)
        return out
    a, b = run(), run()
    assert a == b and 503 in a and 200 in a


def test_knob_validation(emu):
    with pytest.raises(EmulatorError):
        emu.set_knobs(no_such_knob=1)
    with pytest.raises(EmulatorError):
        emu.set_knobs(reset_kinds="nonsense")
    k = emu.set_knobs(token_lifetime="5")
    assert k["token_lifetime"] == 5


def test_stats_count_kinds_and_bytes(own_emulator):
    # An emulator of its own: a download cut by an earlier test's fault knob
    # may still be counted by its handler thread after reset_stats().
    emu = own_emulator
    c = Client(emu)
    emu.reset_stats()
    c.get("")
    c.mkdir("st/x")
    c.upload("st/f", b"12345")
    c.get("st/f", {"mode": "bin"})
    c.get("", {"mode": "liststream"})
    s = emu.stats()
    r = s["requests"]
    assert (r["folder"], r["allocate"], r["upload"], r["download"], r["liststream"],
            r["command"]) == (1, 1, 1, 1, 1, 1)
    assert s["commands"] == {"mkDir": 1}
    assert s["upload_bytes"] == 5 and s["download_bytes"] == 5
    assert s["bytes_received"] >= 5 and s["bytes_sent"] > 5


# ------------------------------------------------------------------ HTTPS CONNECT proxy

def recv_all(s):
    """Everything @s receives until the peer closes."""
    return b"".join(iter(lambda: s.recv(65536), b""))


def tunnel(emu, host, port=443):
    s = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
    s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
               % (host, port, host, port)).encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        if not chunk:
            break
        resp += chunk
    return s, resp


def test_connect_proxy_tls_for_any_host(emu):
    ctx = ssl.create_default_context(cafile=emu.ca_path)
    for host in ("id.jottacloud.com", "cloud-auth.telia.se"):
        s, resp = tunnel(emu, host)
        assert resp.startswith(b"HTTP/1.1 200"), resp
        tls = ctx.wrap_socket(s, server_hostname=host)
        tls.sendall(("GET /auth/realms/r/.well-known/openid-configuration HTTP/1.1\r\n"
                     "Host: %s\r\nConnection: close\r\n\r\n" % host).encode())
        data = recv_all(tls)
        tls.close()
        head, body = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["token_endpoint"] == (
            "https://%s/auth/realms/r/protocol/openid-connect/token" % host)


def test_connect_refuses_other_ports(emu):
    for port in (80, 22, 8443):
        s, resp = tunnel(emu, "jfs.jottacloud.com", port)
        s.close()
        assert resp.startswith(b"HTTP/1.1 403"), resp


def test_direct_tls_on_the_same_port(emu):
    ctx = ssl.create_default_context(cafile=emu.ca_path)
    for host in ("127.0.0.1", "localhost"):
        conn = http.client.HTTPSConnection(host, emu.port, context=ctx, timeout=10)
        conn.request("GET", "/auth/realms/jottacloud/.well-known/openid-configuration")
        r = conn.getresponse()
        doc = json.loads(r.read())
        conn.close()
        assert doc["token_endpoint"].startswith("https://%s:%d/" % (host, emu.port))
    # A client that does not trust the CA fails its handshake; the server carries on.
    bad = http.client.HTTPSConnection("127.0.0.1", emu.port, timeout=10,
                                      context=ssl.create_default_context())
    with pytest.raises(ssl.SSLError):
        bad.request("GET", "/_emu/health")
    bad.close()
    assert emu.request("GET", "/_emu/health")[0] == 200


def test_throughput_bench_runs():
    """Keeps tests/bench/emu_throughput.py working (tiny size, no speed floor)."""
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench",
                         "emu_throughput.py")
    r = subprocess.run([sys.executable, bench, "--size-mib", "16", "--repeat", "1",
                        "--min-mbps", "0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "best: upload" in r.stdout and "CPU s/GB" in r.stdout
