"""Plain http:// endpoints (issue 14, item 5): only to literal loopback hosts
(the emulator), or with an explicit -o insecure_http and a warning; never
from a login token's discovery link or the token endpoint its discovery
document names, whatever the options.

No test here connects to or resolves anything but loopback: every refused
URL names 192.0.2.1 (TEST-NET-1, an IP literal: nothing to resolve) and is
refused before any request; the only servers are the emulator and a small
hostile discovery server, both on 127.0.0.1.

Runs the binary at $JOTTAFS_BIN (default build/jottafs).
"""
import base64
import http.server
import json
import os
import re
import subprocess
import threading
import time

import pytest

from helpers import Account, BIN, run_jottafs as _run, SANITIZER_RE

REMOTE = "http://192.0.2.1"


def run(args, **kw):
    p = _run(args, check=False, **kw)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def account_file(acc):
    return acc.config_home / "jottafs" / f"{acc.name}.json"


@pytest.fixture
def acc(emulator, tmp_path, request):
    return Account(emulator, tmp_path,
                   user="h" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-40:])


def login(acc, token, opts):
    t0 = time.monotonic()
    p = run(["login", "--account", acc.name, "-o", opts], env=acc.env, input=token + "\n",
            timeout=30)
    return p, time.monotonic() - t0


def test_login_refuses_plain_http_endpoint_without_flag(emulator, acc):
    token = emulator.login_token(acc.user)
    before = emulator.stats()["requests"]["oidc"]
    p, took = login(acc, token, f"api_url={emulator.url},jfs_url={REMOTE}/jfs")
    assert p.returncode != 0
    assert "refusing the plain-http jfs_url 'http://192.0.2.1'" in p.stderr, p.stderr
    assert "-o insecure_http" in p.stderr
    assert took < 10
    assert not account_file(acc).exists()
    # refused before anything was sent: not even the discovery document
    assert emulator.stats()["requests"]["oidc"] == before


def test_insecure_http_login_warns_and_every_later_use_needs_it(emulator, acc, tmp_path):
    token = emulator.login_token(acc.user)
    p, _ = login(acc, token, f"api_url={emulator.url},jfs_url={REMOTE}/jfs,insecure_http")
    assert p.returncode == 0, p.stderr
    assert "warning" in p.stderr and "jfs_url 'http://192.0.2.1' is plain http" in p.stderr
    assert json.loads(account_file(acc).read_text())["jfs_url"] == REMOTE + "/jfs"
    # without the flag the stored endpoint is refused, before any request
    p = run(["about", "--account", acc.name], env=acc.env, timeout=30)
    assert p.returncode != 0
    assert "jfs_url 'http://192.0.2.1'" in p.stderr and "stored in '" in p.stderr, p.stderr
    assert "-o insecure_http" in p.stderr
    # a loopback override needs no flag (and the stored one is not used)
    p = run(["about", "--account", acc.name, "-o", f"jfs_url={emulator.jfs_url}"],
            env=acc.env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "plain http" not in p.stderr
    # a mount is refused the same way, before it mounts
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([BIN, "-f", "-o", f"account={acc.name}", str(mnt)], env=acc.env,
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert not os.path.ismount(mnt)
    assert "-o insecure_http" in p.stderr and "jfs_url" in p.stderr, p.stderr


def test_loopback_http_needs_no_flag(emulator, acc):
    token = emulator.login_token(acc.user)
    url = emulator.url.replace("127.0.0.1", "localhost")
    p, _ = login(acc, token, f"api_url={url},jfs_url={url}/jfs")
    assert p.returncode == 0, p.stderr
    assert "plain http" not in p.stderr


def test_login_token_discovery_link_never_plain_http_elsewhere(emulator, acc):
    token = b64url({"username": acc.user, "realm": "jottacloud", "auth_token": "x",
                    "well_known_link": REMOTE + "/auth/realms/jottacloud/.well-known/"
                                       "openid-configuration"})
    for opts in (acc.endpoint_opts(), acc.endpoint_opts() + ",insecure_http"):
        p, took = login(acc, token, opts)
        assert p.returncode != 0
        assert "refusing the login token's discovery link 'http://192.0.2.1'" in p.stderr, \
            p.stderr
        assert "-o insecure_http does not apply" in p.stderr
        assert took < 10
    assert not account_file(acc).exists()


class HostileDiscovery(http.server.BaseHTTPRequestHandler):
    """A discovery document that names a plain-http token endpoint elsewhere."""
    seen = []

    def do_GET(self):
        HostileDiscovery.seen.append(self.path)
        body = json.dumps({"issuer": "x", "token_endpoint": REMOTE + "/token"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_discovered_token_endpoint_never_plain_http_elsewhere(emulator, acc):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileDiscovery)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        HostileDiscovery.seen = []
        link = "http://127.0.0.1:%d/auth/realms/jottacloud/.well-known/openid-configuration" \
            % srv.server_address[1]
        token = b64url({"username": acc.user, "realm": "jottacloud", "auth_token": "x",
                        "well_known_link": link})
        p, took = login(acc, token, acc.endpoint_opts() + ",insecure_http")
        assert p.returncode != 0
        assert "token_endpoint" in p.stderr and "'http://192.0.2.1'" in p.stderr, p.stderr
        assert "-o insecure_http does not apply" in p.stderr
        assert HostileDiscovery.seen == ["/auth/realms/jottacloud/.well-known/"
                                         "openid-configuration"]
        assert took < 10
        assert not account_file(acc).exists()
    finally:
        srv.shutdown()
        srv.server_close()


def test_logout_takes_no_insecure_http(acc):
    p = run(["logout", "--account", acc.name, "-o", "insecure_http"], env=acc.env)
    assert p.returncode == 2 and "is not used by 'logout'" in p.stderr, p.stderr
