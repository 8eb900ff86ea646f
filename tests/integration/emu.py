"""Start and drive a tests/emulator/jottaemu process from Python tests.

    from emu import Emulator
    with Emulator(knobs={"token_lifetime": 5}) as e:      # temp data dir, free port
        token = e.login_token("alice")                     # personal login token
        e.set_knobs(error_rate=0.1, error_kinds="download")
        e.seed([{"path": "dir/a:b", "content": "x"}], user="alice")
        e.stats()["requests"]["download"]
        e.tree("alice")                                    # what the service stores

Attributes: url (http://127.0.0.1:N), port, data_dir, ca_path, jfs_url, api_url,
token_url.  Raises EmulatorError at once if the process dies before its
`ready` line, or if a control call fails.  Standard library only.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
JOTTAEMU = os.path.abspath(os.path.join(HERE, "..", "emulator", "jottaemu"))


class EmulatorError(AssertionError):
    pass


def _knob_args(knobs):
    args = []
    for k, v in (knobs or {}).items():
        opt = {"outage_window": "--outage", "outage": "--outage-on"}.get(
            k, "--" + k.replace("_", "-"))
        if isinstance(v, (list, tuple)):
            v = ",".join(str(i) for i in v)
        args += [opt, str(v).lower() if isinstance(v, bool) else str(v)]
    return args


class Emulator:
    def __init__(self, data_dir=None, knobs=None, port=0, verbose=False, start=True,
                 startup_timeout=30):
        self._own_dir = data_dir is None
        self.data_dir = str(data_dir) if data_dir else tempfile.mkdtemp(prefix="jottaemu-")
        self.knobs_at_start = dict(knobs or {})
        self.port = port
        self.verbose = verbose
        self.startup_timeout = startup_timeout
        self.proc = None
        self.url = None
        self._stderr_lines = []
        if start:
            self.start()

    # ------------------------------------------------------------ lifecycle

    @property
    def ca_path(self):
        return os.path.join(self.data_dir, "ca.pem")

    @property
    def jfs_url(self):
        return self.url + "/jfs"

    @property
    def api_url(self):
        return self.url

    @property
    def token_url(self):
        return self.url + "/auth/realms/jottacloud/protocol/openid-connect/token"

    def start(self):
        """Spawn `jottaemu serve` and wait for its ready line."""
        args = [JOTTAEMU, "serve", "--data", self.data_dir, "--port", str(self.port)]
        args += _knob_args(self.knobs_at_start)
        if self.verbose:
            args.append("--verbose")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self._stderr_lines = []
        self._pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._pump.start()
        line = [None]

        def read_ready():
            line[0] = self.proc.stdout.readline()
        r = threading.Thread(target=read_ready, daemon=True)
        r.start()
        r.join(self.startup_timeout)
        if not line[0] or not line[0].startswith("ready "):
            self.proc.kill()
            self.proc.wait()
            self._pump.join(5)          # its stderr read to the end
            raise EmulatorError("jottaemu did not start (exit %s): stdout %r\nstderr:\n%s"
                                % (self.proc.returncode, line[0], self.stderr()))
        self.url = line[0].split()[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def _pump_stderr(self):
        for ln in self.proc.stderr:
            self._stderr_lines.append(ln)
            if self.verbose:
                print("jottaemu:", ln.rstrip())

    def stderr(self):
        """Everything the emulator logged so far (one line per problem)."""
        return "".join(self._stderr_lines)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGTERM; returns the exit code (0 expected)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        return rc

    def restart(self, **knobs):
        """Stop and start again on the same port and data directory."""
        self.stop()
        if knobs:
            self.knobs_at_start.update(knobs)
        return self.start()

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ control endpoint

    def control(self, method, path, body=None, query=None):
        url = self.url + "/_emu/" + path.lstrip("/")
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                ctype = r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raise EmulatorError("control %s %s failed: %d %s" % (method, path, e.code,
                                                                 e.read()[:500]))
        except OSError as e:
            raise EmulatorError("control %s %s failed: %s (emulator alive: %s)\n%s"
                                % (method, path, e, self.alive(), self.stderr()))
        return json.loads(raw) if ctype.startswith("application/json") else raw

    def login_token(self, user="testuser", issuer=None):
        """A fresh single-use personal login token for user (created if needed)."""
        body = {"user": user}
        if issuer:
            body["issuer"] = issuer
        return self.control("POST", "login-token", body)["token"]

    def username(self, user="testuser"):
        """The internal (24 character) username of a login name."""
        for u in self.control("GET", "users"):
            if u["login"] == user:
                return u["username"]
        raise EmulatorError("no such user: %s" % user)

    def knobs(self):
        return self.control("GET", "knobs")

    def set_knobs(self, **knobs):
        return self.control("POST", "knobs", knobs)

    def reset_knobs(self):
        """Every knob back to its default (the start-up knobs are not re-applied)."""
        return self.control("POST", "knobs/reset", {})

    def stats(self):
        return self.control("GET", "stats")

    def reset_stats(self):
        return self.control("POST", "stats/reset", {})

    def seed(self, entries, user="testuser", device="Jotta", mountpoint="Archive", **spec):
        spec.update({"user": user, "device": device, "mountpoint": mountpoint,
                     "entries": entries})
        return self.control("POST", "seed", spec)

    def tree(self, user="testuser", device="Jotta", mountpoint="Archive"):
        return self.control("GET", "tree", query={"user": user, "device": device,
                                                  "mountpoint": mountpoint})

    def content(self, path, user="testuser", device="Jotta", mountpoint="Archive"):
        return self.control("GET", "content", query={"user": user, "path": path,
                                                     "device": device,
                                                     "mountpoint": mountpoint})

    def expire_tokens(self, user=None):
        return self.control("POST", "expire-tokens", {"user": user} if user else {})

    # ------------------------------------------------------------ plain API access

    def tokens(self, user="testuser"):
        """Log in with a fresh login token (password grant): the token JSON."""
        tok = self.login_token(user)
        secret = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
        form = urllib.parse.urlencode({"client_id": "jottacli", "grant_type": "password",
                                       "password": secret["auth_token"],
                                       "scope": "openid offline_access",
                                       "username": user}).encode()
        status, _, body = self.request("POST", self.token_url, body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise EmulatorError("password grant failed: %d %s" % (status, body[:300]))
        return json.loads(body)

    def request(self, method, url, body=None, headers=None, token=None, timeout=60):
        """One HTTP request; returns (status, headers dict, body bytes). Never raises
        on HTTP errors.  url may be relative to the emulator ('/jfs/...')."""
        import http.client
        if url.startswith("/"):
            url = self.url + url
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        target = u.path + ("?" + u.query if u.query else "")
        try:
            conn.request(method, target, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()
