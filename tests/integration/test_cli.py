"""The jottafs subcommands against the emulator: login (stdin, terminal, never
argv), the account file, clear one-line errors (malformed, already used,
unreachable, TLS), about, devices, logout, and token refresh shared by
concurrent processes without ever killing the token family.

Runs the binary at $JOTTAFS_BIN (default build/jottafs).
"""
import base64
import json
import os
import pty
import re
import select
import stat
import subprocess
import termios
import time
import urllib.parse

import pytest

from helpers import (Account, BIN, free_port as _dead_port, run_jottafs as _run, SANITIZER_RE,
                     wait_for)

GiB = 1 << 30
MiB = 1 << 20


@pytest.fixture(autouse=True)
def default_knobs(emulator):
    yield
    if emulator.alive():
        emulator.reset_knobs()


def run(args, **kw):
    """helpers.run_jottafs, plus: no sanitizer report in the output."""
    p = _run(args, **kw)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p


def _user(request):
    return "c" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-40:]


class CliAccount(Account):
    def run(self, args, **kw):
        return run(args, env=self.env, **kw)


@pytest.fixture
def acc(emulator, tmp_path, request):
    """An account (own emulator user), not yet logged in."""
    return CliAccount(emulator, tmp_path, user=_user(request))


def b64url(obj, pad=False, alphabet="url"):
    raw = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    s = base64.b64encode(raw).decode()
    if alphabet == "url":
        s = s.replace("+", "-").replace("/", "_")
    return s if pad else s.rstrip("=")


def account_file(acc):
    return acc.config_home / "jottafs" / f"{acc.name}.json"


def login(acc, token, extra=(), env=None, check=False):
    args = ["login", "--account", acc.name, "-o", acc.endpoint_opts()] + list(extra)
    return run(args, env=env or acc.env, input=token + "\n", check=check)


def secrets_of(acc):
    """Every secret stored for the account (to check no output contains them)."""
    data = json.loads(account_file(acc).read_text())
    return [data["access_token"], data["refresh_token"]]


def assert_no_secret(text, secrets):
    for s in secrets:
        assert s and s not in text, "a secret leaked into the output"


# ---------------------------------------------------------------- login

def test_login_from_stdin_stores_account(emulator, acc):
    token = emulator.login_token(acc.user)
    p = login(acc, token, extra=["-d"], check=True)
    path = account_file(acc)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert sorted(os.listdir(path.parent)) == [path.name]      # no temp file left
    data = json.loads(path.read_text())
    assert data["username"] == emulator.username(acc.user)
    assert data["login_user"] == acc.user
    assert data["api_url"] == emulator.url
    assert data["jfs_url"] == emulator.jfs_url
    assert data["token_url"] == emulator.token_url              # from discovery
    assert data["client_id"] == "jottacli"
    assert data["access_token"] and data["refresh_token"]
    # the single-use login secret is not kept
    secret = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["auth_token"]
    assert secret not in path.read_text()
    # no secret in any output, even with debug tracing on
    out = p.stdout + p.stderr
    assert_no_secret(out, secrets_of(acc) + [token, secret])
    assert "Authorization" not in out
    assert "http: POST" in p.stderr                             # the trace was on


def test_login_from_terminal_without_echo(emulator, acc):
    """On a terminal the token is read with echo off (and a prompt)."""
    token = emulator.login_token(acc.user)
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "login", "--account", acc.name, "-o", acc.endpoint_opts()],
                            stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=acc.env)
    os.close(slave)
    seen = b""

    def read_until(pred, timeout=20):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not pred(seen) and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return pred(seen)

    assert read_until(lambda s: b"login token" in s), seen
    # the prompt comes first, then echo goes off: wait for the terminal state
    # (tcgetattr on the master gives the slave's settings on Linux)
    wait_for(lambda: not termios.tcgetattr(master)[3] & termios.ECHO, 20,
             "jottafs login to switch the terminal's echo off")
    os.write(master, token.encode() + b"\n")
    out, _ = proc.communicate(timeout=60)
    read_until(lambda s: False, timeout=0.5)
    os.close(master)
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert not SANITIZER_RE.search(seen.decode(errors="replace"))
    assert token.encode() not in seen                # not echoed
    assert b"Logged in" in out
    assert account_file(acc).exists()


def test_login_refuses_token_in_argv(emulator, acc):
    token = emulator.login_token(acc.user)
    p = run(["login", "--account", acc.name, token], env=acc.env, check=False)
    assert p.returncode == 2
    assert "command line" in p.stderr and "jottafs login" in p.stderr
    assert token not in p.stdout + p.stderr
    assert not account_file(acc).exists()
    # the token is still unused: a proper login with it works
    login(acc, token, check=True)


def test_login_already_used_token(emulator, acc):
    token = emulator.login_token(acc.user)
    login(acc, token, check=True)
    p = login(acc, token)
    assert p.returncode == 1
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "already been used" in err and "invalid_grant" in err
    assert "jottafs login" in err
    assert token not in err


def _malformed_tokens(link):
    good = {"username": "u", "realm": "jottacloud", "well_known_link": link,
            "auth_token": "secret~~~~~~~~~"}
    std = b64url(good, alphabet="std")
    assert "+" in std or "/" in std
    return {
        "padded": (b64url(good, pad=True) if len(b64url(good)) % 4 else
                   b64url(dict(good, x="1"), pad=True), "'='"),
        "std-alphabet": (std, "base64"),
        "not-base64": ("this*is*not*a*token!", "not base64url"),
        "not-json": (b64url(b"hello, world"), "JSON"),
        "missing-field": (b64url({"username": "u", "well_known_link": link}), "auth_token"),
    }


@pytest.mark.parametrize("kind", ["padded", "std-alphabet", "not-base64", "not-json",
                                  "missing-field"])
def test_login_malformed_token(emulator, acc, kind):
    link = emulator.url + "/auth/realms/jottacloud/.well-known/openid-configuration"
    token, reason = _malformed_tokens(link)[kind]
    before = emulator.stats()["grants"].get("password", 0)
    p = login(acc, token)
    assert p.returncode == 1
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("jottafs: the login token is malformed")
    assert reason in err
    assert "jottafs login" in err
    assert not account_file(acc).exists()
    assert emulator.stats()["grants"].get("password", 0) == before   # nothing was sent


def test_login_unreachable_server(acc):
    port = _dead_port()
    token = b64url({"username": "u", "realm": "jottacloud",
                    "well_known_link": f"http://127.0.0.1:{port}/auth/realms/jottacloud/"
                                       ".well-known/openid-configuration",
                    "auth_token": "s"})
    t0 = time.monotonic()
    p = login(acc, token)
    assert time.monotonic() - t0 < 30
    assert p.returncode == 1
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert f"cannot reach http://127.0.0.1:{port}" in err
    assert "check the network" in err


def test_login_tls_through_proxy(emulator, acc):
    """The real host names through the emulator's CONNECT proxy: trusted with
    -o cafile (stored, used by later commands), refused without it."""
    env = dict(acc.env, HTTPS_PROXY=emulator.url)
    token = emulator.login_token(acc.user, issuer="https://id.jottacloud.com")
    p = run(["login", "--account", acc.name], env=env, input=token + "\n", check=False)
    assert p.returncode == 1
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "TLS" in err and "https://id.jottacloud.com" in err and "cafile" in err
    assert not account_file(acc).exists()

    # the same (unused) token, now trusting the emulator's CA
    p = run(["login", "--account", acc.name, "-o", "cafile=" + emulator.ca_path], env=env,
            input=token + "\n", check=False)
    assert p.returncode == 0, p.stderr
    data = json.loads(account_file(acc).read_text())
    assert data["api_url"] == "https://api.jottacloud.com"
    assert data["token_url"].startswith("https://id.jottacloud.com/")
    assert data["cafile"] == emulator.ca_path
    # later commands use the stored CA, through the proxy
    p = run(["about", "--account", acc.name, "--json"], env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["username"] == emulator.username(acc.user)


# ---------------------------------------------------------------- about, devices, logout

def test_about_units_json_and_capacity(emulator, acc):
    login(acc, emulator.login_token(acc.user), check=True)
    emulator.seed([{"path": "big.bin", "size": 3 * MiB, "fill": "zero"},
                   {"path": "dir/small.txt", "content": "x" * 512}], user=acc.user)
    used = 3 * MiB + 512

    p = acc.run(["about"])
    assert "Used:     3.0 MiB (%d bytes)" % used in p.stdout
    assert "Total:    unlimited" in p.stdout
    assert "Free:" not in p.stdout

    j = json.loads(acc.run(["about", "--json"]).stdout)
    assert j["usage"] == used
    assert j["unlimited"] is True and j["capacity"] < 0 and j["free"] is None
    assert j["username"] == emulator.username(acc.user)
    assert j["account"] == acc.name

    emulator.set_knobs(capacity=10 * GiB)
    p = acc.run(["about"])
    assert "Total:    10.0 GiB (%d bytes)" % (10 * GiB) in p.stdout
    assert "Free:     10.0 GiB (%d bytes)" % (10 * GiB - used) in p.stdout
    j = json.loads(acc.run(["about", "--json"]).stdout)
    assert j["capacity"] == 10 * GiB and j["free"] == 10 * GiB - used and not j["unlimited"]
    assert_no_secret(p.stdout + p.stderr, secrets_of(acc))


def test_endpoint_override_is_not_stored(emulator, acc):
    login(acc, emulator.login_token(acc.user), check=True)
    port = _dead_port()
    p = acc.run(["about", "-o", f"api_url=http://127.0.0.1:{port},jfs_url=http://127.0.0.1:"
                 f"{port}/jfs"], check=False)
    assert p.returncode == 1
    assert "cannot reach" in p.stderr
    acc.run(["about"])                               # the stored endpoints still work


def test_devices(emulator, acc):
    login(acc, emulator.login_token(acc.user), check=True)
    emulator.seed([{"path": "f.txt", "content": "hello"}], user=acc.user, device="Laptop",
                  mountpoint="Documents")
    p = acc.run(["devices"])
    assert re.search(r"^Jotta \(", p.stdout, re.M)
    assert "    Jotta/Archive\n" in p.stdout
    assert re.search(r"^Laptop \(", p.stdout, re.M)
    assert "    Laptop/Documents\n" in p.stdout
    devs = {d["name"]: d for d in json.loads(acc.run(["devices", "--json"]).stdout)}
    assert "Archive" in devs["Jotta"]["mountpoints"]
    assert devs["Laptop"]["mountpoints"] == ["Documents"]


def test_logout(emulator, acc):
    login(acc, emulator.login_token(acc.user), check=True)
    p = acc.run(["logout", "--account", acc.name])
    assert "Logged out" in p.stdout
    assert not account_file(acc).exists()
    p = acc.run(["about", "--account", acc.name], check=False)
    assert p.returncode == 1
    assert "not logged in" in p.stderr and "jottafs login" in p.stderr
    p = acc.run(["logout", "--account", acc.name], check=False)
    assert p.returncode == 1 and "not logged in" in p.stderr


def test_usage_errors(acc):
    for args, needle in [(["about", "--frob"], "unknown option '--frob'"),
                         (["devices", "extra"], "unexpected argument 'extra'"),
                         (["logout", "--json"], "--json"),
                         (["about", "--account", "../x"], "invalid account name")]:
        p = acc.run(args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert needle in p.stderr
    for args in (["login", "-h"], ["about", "--help"]):
        p = acc.run(args)
        assert p.stdout.startswith("usage: jottafs")


# ---------------------------------------------------------------- refresh

def _about_loop(acc, seconds):
    return subprocess.Popen(
        ["/bin/sh", "-c", 'end=$(( $(date +%s) + ' + str(seconds) + ' )); n=0; '
         'while [ $(date +%s) -lt $end ]; do "$0" about --json >/dev/null || exit 1; '
         'n=$((n+1)); done; echo $n', BIN],
        env=acc.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_refresh_across_concurrent_processes(emulator, acc):
    """5-second access tokens, two processes calling the service for 20 s: every
    refresh is serialised and persisted, no refresh token is ever reused (the
    emulator kills the family on reuse), and every call succeeds."""
    emulator.set_knobs(token_lifetime=5)
    login(acc, emulator.login_token(acc.user), check=True)
    before = emulator.stats()
    loops = [_about_loop(acc, 20), _about_loop(acc, 20)]
    outs = [p.communicate(timeout=120) for p in loops]
    for p, (out, err) in zip(loops, outs):
        assert p.returncode == 0, err
        assert not SANITIZER_RE.search(err), err
        assert int(out.strip()) > 5
        assert "invalid_grant" not in err
    after = emulator.stats()
    refreshes = after["grants"].get("refresh_token", 0) - before["grants"].get("refresh_token", 0)
    assert refreshes >= 4, after          # 20 s of 5 s tokens
    assert after["grant_errors"] == before["grant_errors"], after   # no reuse, no kill
    # the family is alive: one more call works
    acc.run(["about"])


def test_revoked_refresh_token_says_log_in_again(emulator, acc):
    login(acc, emulator.login_token(acc.user), check=True)
    data = json.loads(account_file(acc).read_text())
    # Someone else spends the stored refresh token (a copied account file).
    form = urllib.parse.urlencode({"client_id": "jottacli", "grant_type": "refresh_token",
                                   "refresh_token": data["refresh_token"]}).encode()
    status, _, _ = emulator.request("POST", emulator.token_url, body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    emulator.expire_tokens(acc.user)       # our access token is refused: we must refresh
    p = acc.run(["about"], check=False)
    assert p.returncode == 1
    assert "the login was revoked (invalid_grant): run 'jottafs login' again" in p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.strip()]) == 1, p.stderr
    assert_no_secret(p.stdout + p.stderr, [data["refresh_token"], data["access_token"]])
    # logging in again fixes it
    login(acc, emulator.login_token(acc.user), check=True)
    acc.run(["about"])


# ------------------------------------------------------------------ the newcomer's path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _help_option_names(text):
    block = text.split("Passed on", 1)[0]          # the usage lines (login) included
    return set(re.findall(r"-o ([a-z_]+)", block)) | set(re.findall(r",\s?([a-z_]+)=", block))


def test_help_subcommand_and_options_documented_alike():
    """`jottafs help` prints the help (it tried to mount ./help); every -o
    option of --help is in the man page and the README, once in --help, and
    every -o option the man page or the README documents is in --help."""
    p = subprocess.run([BIN, "help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("usage: "), (p.returncode, p.stderr)
    h = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    assert h == p.stdout
    opts = _help_option_names(h)
    assert {"account", "cache_dir", "max_threads", "allow_root", "auto_unmount",
            "max_read", "max_listing_bytes"} <= opts, sorted(opts)
    assert len(re.findall(r"-o allow_other\b", h)) == 1, h
    with open(os.path.join(ROOT, "man", "jottafs.1")) as f:
        man = f.read()
    man_opts = man.split(".SH OPTIONS", 1)[1].split(".SH ", 1)[0]
    man_o = set(re.findall(r"\\-o\\? ([a-z_]+)", man_opts))
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    readme_o = {re.match(r"\s*([a-z_]+)", part).group(1)
                for m in re.finditer(r"`-o ([^`]+)`", readme) for part in m.group(1).split(",")
                if re.match(r"\s*[a-z_]+", part)}
    assert not opts - man_o, "in --help, not in the man page: %r" % sorted(opts - man_o)
    assert not opts - readme_o, "in --help, not in the README: %r" % sorted(opts - readme_o)
    assert not man_o - opts, "in the man page, not in --help: %r" % sorted(man_o - opts)
    assert not readme_o - opts, "in the README, not in --help: %r" % sorted(readme_o - opts)
    for flag in ("-f", "-d", "-s"):
        assert "\n    %s" % flag in h or ", %s" % flag in h, flag
        assert ".B \\%s" % flag in man, flag
        assert "`%s`" % flag in readme, flag
