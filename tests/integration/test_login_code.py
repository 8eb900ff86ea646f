"""jottafs login --service: the authorization-code flow (issue 12).

The services of share/services.json point at real domains; every test points
its service at the emulator with a user override file in the test's own
configuration directory ({"services": [{"key": K, "url": "http://127.0.0.1:N"}]}),
so nothing but loopback is ever resolved or contacted.  The browser is played
by http.client: it fetches the printed authorization URL without following the
redirect, then either delivers the Location to the listener on 127.0.0.1 or
the test pastes it on standard input.
"""
import http.client
import json
import os
import queue
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from helpers import Account, BIN, free_port, SANITIZER_RE

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVICES = os.path.join(REPO, "share", "services.json")
URL_LINE = re.compile(r"^https?://\S+/protocol/openid-connect/auth\?\S+$")

# key -> (client_id, scope sent): four services with different clients and scopes
CASES = {
    "telia_se": ("desktop", "openid jotta-default offline_access"),
    "elkjop": ("desktop", "openid jotta-default offline_access"),
    "letsgo": ("desktop-win", "openid offline_access"),
    "phonero": ("desktop-win", "openid offline_access"),
}


def code_account(emu, tmp_path, service, user, name="default", override=None):
    acc = Account(emu, tmp_path, name=name, user=user)
    cfg = acc.config_home / "jottafs"
    cfg.mkdir(mode=0o700, exist_ok=True)
    entry = {"key": service, "url": emu.url}
    if override is not None:
        entry = override
    if entry:
        (cfg / "services.json").write_text(json.dumps({"services": [entry]}))
    env = acc.env
    for k in ("NO_PROXY", "no_proxy"):
        env.pop(k, None)
    env.pop("DISPLAY", None)          # never start a browser in tests
    env.pop("WAYLAND_DISPLAY", None)
    acc.code_env = env
    return acc


class Login:
    """A running 'jottafs login --service' whose output is read line by line."""

    def __init__(self, acc, service, opts=(), stdin=subprocess.PIPE, endpoints=True):
        o = ["services=" + SERVICES] + list(opts)
        if endpoints:
            o += ["api_url=" + acc.emu.url, "jfs_url=" + acc.emu.url + "/jfs"]
        self.proc = subprocess.Popen(
            [BIN, "login", "--service", service, "--account", acc.name, "-o", ",".join(o)],
            env=acc.code_env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines = queue.Queue()
        self.out = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.out.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def url(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if URL_LINE.match(line.rstrip("\n")):
                return line.strip()
        self.proc.kill()
        raise AssertionError("no authorization URL printed:\n%s\n%s"
                             % ("".join(self.out), self.proc.stderr.read()))

    def paste(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=60):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        err = self.proc.stderr.read()
        self.pump.join(timeout=10)            # it reads stdout to its end first
        self.proc.stdout.close()
        self.proc.stderr.close()
        if self.proc.stdin:
            self.proc.stdin.close()
        assert not SANITIZER_RE.search(err), err
        return rc, "".join(self.out), err


def get(url, timeout=10):
    """One GET to a loopback URL, redirects not followed: (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    assert u.hostname in ("127.0.0.1", "localhost"), url
    conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def authorize(url):
    """Play the browser at the authorization endpoint: the redirect's Location."""
    status, headers, _ = get(url)
    assert status == 302, (status, url)
    return headers["location"]


def check_auth_url(url, service, port=None):
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    client, scope = CASES.get(service, ("desktop", "openid jotta-default offline_access"))
    assert u.path == "/auth/realms/%s/protocol/openid-connect/auth" % _realm(service)
    assert q["client_id"] == client
    assert q["scope"] == scope
    assert q["response_type"] == "code"
    assert q["access_type"] == "offline"
    assert len(q["state"]) >= 32
    assert "code_challenge" not in q           # the reference's flow has no PKCE
    r = urllib.parse.urlsplit(q["redirect_uri"])
    assert (r.scheme, r.hostname, r.path) == ("http", "localhost", "/")
    if port:
        assert r.port == port
    return q


def _realm(service):
    with open(SERVICES) as f:
        for s in json.load(f)["services"]:
            if s["key"] == service:
                return s["realm"]
    raise KeyError(service)


def account_file(acc):
    with open(acc.config_home / "jottafs" / (acc.name + ".json")) as f:
        return json.load(f)


def run_cli(args, **kw):
    p = subprocess.run(args, **kw)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p


def about(acc):
    p = subprocess.run([BIN, "about", "--account", acc.name, "--json"], env=acc.code_env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def user(emulator, request):
    name = "c" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-40:]
    emulator.set_knobs(auth_user=name, auth_deny=False)
    yield name
    emulator.set_knobs(auth_user="testuser", auth_deny=False)


@pytest.mark.parametrize("service", sorted(CASES))
def test_login_through_listener(emulator, tmp_path, user, service):
    acc = code_account(emulator, tmp_path, service, user)
    port = free_port()
    lg = Login(acc, service, ["login_port=%d" % port])
    url = lg.url()
    check_auth_url(url, service, port)
    loc = authorize(url)
    status, _, page = get(loc)
    assert status == 200 and "close this tab" in page
    rc, out, err = lg.finish()
    assert rc == 0, err
    assert "Logged in" in out
    a = account_file(acc)
    assert a["service"] == service
    assert a["client_id"] == CASES[service][0]
    assert a["token_url"] == emulator.url + "/auth/realms/%s/protocol/openid-connect/token" \
        % _realm(service)
    assert a["username"] == emulator.username(user)
    assert about(acc)["username"] == emulator.username(user)
    assert "Logged in to" in out and "account 'default'" in out


@pytest.mark.parametrize("service", sorted(CASES))
def test_login_by_pasting(emulator, tmp_path, user, service):
    acc = code_account(emulator, tmp_path, service, user)
    lg = Login(acc, service, ["login_port=%d" % free_port()])
    url = lg.url()
    check_auth_url(url, service)
    lg.paste(authorize(url))
    rc, out, err = lg.finish()
    assert rc == 0, err
    assert account_file(acc)["client_id"] == CASES[service][0]
    about(acc)


def test_paste_bare_code(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    lg = Login(acc, "telia_se", ["login_port=%d" % free_port()])
    loc = authorize(lg.url())
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))["code"]
    lg.paste("")
    lg.paste(code)
    rc, _, err = lg.finish()
    assert rc == 0, err


def test_mount_after_code_login(emulator, tmp_path, user, mounter):
    acc = code_account(emulator, tmp_path, "elkjop", user)
    emulator.seed([{"path": "hello.txt", "content": "from the service\n"}], user=user)
    lg = Login(acc, "elkjop", ["login_port=%d" % free_port()])
    lg.paste(authorize(lg.url()))
    rc, _, err = lg.finish()
    assert rc == 0, err
    m = mounter(acc)
    with open(os.path.join(m.path, "hello.txt")) as f:
        assert f.read() == "from the service\n"
    with open(os.path.join(m.path, "new.txt"), "w") as f:
        f.write("written through a code-flow login\n")
    m.unmount()
    assert emulator.content("new.txt", user=user) == b"written through a code-flow login\n"


def test_refresh_uses_the_stored_client_id(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "letsgo", user)
    lg = Login(acc, "letsgo", ["login_port=%d" % free_port()])
    lg.paste(authorize(lg.url()))
    assert lg.finish()[0] == 0
    before = account_file(acc)
    emulator.expire_tokens(user)
    emulator.reset_stats()
    about(acc)
    after = account_file(acc)
    assert after["refresh_token"] != before["refresh_token"]
    assert after["client_id"] == "desktop-win"
    assert after["token_url"] == before["token_url"]
    # the emulator refuses a refresh by another client than the family's
    assert emulator.stats().get("grant_errors", 0) == 0


def test_paste_with_another_state_is_refused(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    lg = Login(acc, "telia_se", ["login_port=%d" % free_port()])
    loc = authorize(lg.url())
    bad = re.sub(r"state=[^&]+", "state=somebodyelsesstate0123456789abcdefghij", loc)
    lg.paste(bad)
    rc, _, err = lg.finish()
    assert rc == 1
    assert "state" in err and "refusing" in err
    assert not (acc.config_home / "jottafs" / "default.json").exists()


def test_listener_ignores_other_paths_and_states(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    port = free_port()
    lg = Login(acc, "telia_se", ["login_port=%d" % port])
    loc = authorize(lg.url())
    q = urllib.parse.urlsplit(loc).query
    base = "http://127.0.0.1:%d" % port
    assert get(base + "/elsewhere?" + q)[0] == 404
    assert get(base + "/")[0] in (400, 404)
    other = re.sub(r"state=[^&]+", "state=notthisone", q)
    assert get(base + "/?" + other)[0] == 400
    assert lg.proc.poll() is None           # still waiting
    status, _, page = get(base + "/?" + q)
    assert status == 200 and "close this tab" in page
    rc, _, err = lg.finish()
    assert rc == 0, err
    # once: the listener is gone
    with pytest.raises(OSError):
        get(base + "/?" + q, timeout=2)


def test_denied_consent(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    emulator.set_knobs(auth_deny=True)
    port = free_port()
    lg = Login(acc, "telia_se", ["login_port=%d" % port])
    loc = authorize(lg.url())
    assert "error=access_denied" in loc
    status, _, _ = get(loc)
    assert status == 200
    rc, _, err = lg.finish()
    assert rc == 1
    assert "access_denied" in err and "denied" in err


def test_code_used_twice_is_refused(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    lg = Login(acc, "telia_se", ["login_port=%d" % free_port()])
    loc = authorize(lg.url())
    lg.paste(loc)
    assert lg.finish()[0] == 0
    # the same answer again, to a new login: its state differs, so refused...
    lg2 = Login(acc, "telia_se", ["login_port=%d" % free_port()])
    lg2.url()
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))["code"]
    lg2.paste(code)                         # ...and the bare code is spent
    rc, _, err = lg2.finish()
    assert rc == 1
    assert "expired or was already used" in err


def test_timeout(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    t0 = time.monotonic()
    lg = Login(acc, "telia_se", ["login_port=%d" % free_port(), "login_timeout=2"],
               stdin=subprocess.DEVNULL)
    lg.url()
    rc, _, err = lg.finish()
    assert rc == 1
    assert "no answer from the browser within 2 s" in err
    assert time.monotonic() - t0 < 20


def test_busy_port_takes_another(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        lg = Login(acc, "telia_se", ["login_port=%d" % port])
        url = lg.url()
        q = check_auth_url(url, "telia_se")
        other = urllib.parse.urlsplit(q["redirect_uri"]).port
        assert other != port
        status, _, _ = get(authorize(url))
        assert status == 200
        assert lg.finish()[0] == 0
    finally:
        busy.close()


def test_unknown_service_lists_them(emulator, tmp_path, user):
    acc = code_account(emulator, tmp_path, "telia_se", user)
    p = run_cli([BIN, "login", "--service", "nosuch", "-o", "services=" + SERVICES],
                       env=acc.code_env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "unknown service 'nosuch'" in p.stderr
    for key in ("telia_se", "tele2", "phonero", "letsgo", "elkjop", "mediamarkt"):
        assert key in p.stderr
    p = run_cli([BIN, "login", "--service", "list", "-o", "services=" + SERVICES],
                       env=acc.code_env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert len([ln for ln in p.stdout.splitlines() if ln.startswith("  ")]) == 13


@pytest.mark.parametrize("entry,why", [
    ({"key": "telia_se", "client_id": "bad id"}, "'client_id' must be"),
    ({"key": "telia_se", "scope": ["openid"]}, "unknown member 'scope'"),
    ({"key": "newone", "name": "New"}, "'domain' is missing"),
    ({"key": "telia_se", "url": "ftp://x"}, "'url' must be"),
])
def test_bad_services_file(emulator, tmp_path, user, entry, why):
    acc = code_account(emulator, tmp_path, "telia_se", user, override=entry)
    p = run_cli([BIN, "login", "--service", "telia_se", "-o", "services=" + SERVICES],
                       env=acc.code_env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "services.json': entry 1 ('%s')" % entry["key"] in p.stderr
    assert why in p.stderr


def test_phonero_refuses_what_the_reference_says(emulator, tmp_path, user):
    """The emulator's phonero realm refuses the jotta-default scope (docs 2.4):
    a table entry that asks for it gets a clear error, not a login."""
    acc = code_account(emulator, tmp_path, "phonero", user, override={
        "key": "phonero", "url": emulator.url,
        "scopes": ["openid", "jotta-default", "offline_access"]})
    lg = Login(acc, "phonero", ["login_port=%d" % free_port()])
    lg.paste(authorize(lg.url()))
    rc, _, err = lg.finish()
    assert rc == 1
    assert "invalid_scope" in err


@pytest.mark.parametrize("service", sorted(CASES))
def test_real_domains_through_the_proxy(emulator, tmp_path, user, service):
    """The table as installed (real domains, https): jottafs and the browser
    reach the emulator through its CONNECT proxy, which never resolves a name;
    the printed address starts with https:// and names the service's domain."""
    acc = code_account(emulator, tmp_path, service, user, override={})
    acc.code_env["HTTPS_PROXY"] = emulator.url
    with open(SERVICES) as f:
        domain = {e["key"]: e["domain"] for e in json.load(f)["services"]}[service]
    lg = Login(acc, service, ["login_port=%d" % free_port(), "cafile=" + emulator.ca_path],
               endpoints=False)
    url = lg.url()
    assert url.startswith("https://%s/auth/realms/" % domain)
    check_auth_url(url, service)
    # the browser: a CONNECT tunnel to the service's domain, via the proxy on loopback
    ctx = ssl.create_default_context(cafile=emulator.ca_path)
    conn = http.client.HTTPSConnection("127.0.0.1", emulator.port, timeout=10, context=ctx)
    conn.set_tunnel(domain, 443)
    u = urllib.parse.urlsplit(url)
    conn.request("GET", u.path + "?" + u.query)
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 302
    lg.paste(r.getheader("Location"))
    rc, _, err = lg.finish()
    assert rc == 0, err
    a = account_file(acc)
    assert a["token_url"] == "https://%s/auth/realms/%s/protocol/openid-connect/token" % (
        domain, _realm(service))
    assert a["api_url"] == "https://api.jottacloud.com"
    assert about(acc)["username"] == emulator.username(user)


def test_network_and_tls_failures_are_explained(emulator, tmp_path, user):
    # nothing listens there
    acc = code_account(emulator, tmp_path, "tele2", user,
                       override={"key": "tele2", "url": "http://127.0.0.1:%d" % free_port()})
    p = run_cli([BIN, "login", "--service", "tele2", "-o", "services=" + SERVICES],
                       env=acc.code_env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert "cannot reach" in p.stderr and "check the network" in p.stderr
    # the real domain through the proxy, without trusting its CA
    acc = code_account(emulator, tmp_path / "tls", "tele2", user, override={})
    acc.code_env["HTTPS_PROXY"] = emulator.url
    p = run_cli([BIN, "login", "--service", "tele2", "-o", "services=" + SERVICES],
                       env=acc.code_env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert "TLS" in p.stderr and "mittcloud-auth.tele2.se" in p.stderr
