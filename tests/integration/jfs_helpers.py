"""Helpers to run the jottafs binary in tests, in the sshfs test pattern.

- every daemon runs in the foreground (-f) as a child we own, with its own
  XDG_CONFIG_HOME / XDG_CACHE_HOME under the test's temp dir;
- wait_for_mount() fails at once if the daemon died instead of mounting;
- unmount() uses fusermount3 -u and requires the daemon's exit status 0;
- the daemon's output is scanned for sanitizer reports and (unless allowed)
  error lines;
- cleanup() kills and lazily unmounts whatever is left.
"""
import os
import re
import signal
import subprocess
import time

BIN = os.environ.get("JOTTAFS_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "jottafs")
BIN = os.path.abspath(BIN)

SANITIZER_RE = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"ThreadSanitizer|SUMMARY: UndefinedBehaviorSanitizer)")
ERROR_RE = re.compile(r"jottafs error:")


class DaemonFailed(AssertionError):
    pass


def run(args, env=None, input=None, timeout=60, check=True):
    """Run the jottafs binary (subcommand form); returns CompletedProcess."""
    p = subprocess.run([BIN] + list(args), env=env, input=input,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(
            f"jottafs {' '.join(args)} exited {p.returncode}\n"
            f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class Account:
    """A jottafs account (config + cache homes) logged in to an emulator."""

    def __init__(self, emu, tmp_path, name="default", user="testuser"):
        self.emu = emu
        self.name = name
        self.user = user
        self.home = tmp_path / f"home-{name}"
        self.config_home = self.home / "config"
        self.cache_home = self.home / "cache"
        self.config_home.mkdir(parents=True, exist_ok=True)
        self.cache_home.mkdir(parents=True, exist_ok=True)

    @property
    def env(self):
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(self.config_home)
        env["XDG_CACHE_HOME"] = str(self.cache_home)
        env["HOME"] = str(self.home)
        for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                  "ALL_PROXY", "all_proxy"):
            env.pop(k, None)
        return env

    def endpoint_opts(self):
        return f"api_url={self.emu.url},jfs_url={self.emu.url}/jfs"

    def login(self):
        token = self.emu.login_token(self.user)
        return run(["login", "--account", self.name, "-o", self.endpoint_opts()],
                   env=self.env, input=token + "\n")

    def run(self, args, **kw):
        return run(args, env=self.env, **kw)


class Mount:
    """One running jottafs daemon mounted at @path."""

    def __init__(self, account, path, remote=None, options=(), allow_errors=False,
                 extra_args=()):
        self.account = account
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        opts = ["account=" + account.name] + list(options)
        args = [BIN, "-f", "-o", ",".join(opts)] + list(extra_args)
        if remote:
            args.append(remote)
        args.append(self.path)
        self.allow_errors = allow_errors
        self.logfile = open(os.path.join(str(account.home), f"daemon-{os.getpid()}-{id(self)}.log"),
                            "w+")
        self.proc = subprocess.Popen(args, env=account.env, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        self.wait_for_mount()

    def output(self):
        self.logfile.flush()
        with open(self.logfile.name, errors="replace") as f:
            return f.read()

    def wait_for_mount(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonFailed(
                    f"jottafs exited {self.proc.returncode} before mounting:\n{self.output()}")
            if os.path.ismount(self.path):
                return
            time.sleep(0.05)
        self.kill()
        raise DaemonFailed(f"jottafs did not mount within {timeout} s:\n{self.output()}")

    def check_output(self):
        out = self.output()
        m = SANITIZER_RE.search(out)
        if m:
            raise AssertionError(f"sanitizer report in daemon output:\n{out}")
        if not self.allow_errors and ERROR_RE.search(out):
            raise AssertionError(f"error lines in daemon output:\n{out}")
        return out

    def unmount(self, timeout=120):
        """fusermount3 -u, then require exit status 0 and a clean log."""
        subprocess.run(["fusermount3", "-u", self.path], check=True,
                       capture_output=True, timeout=30)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"jottafs did not exit after unmount:\n{self.output()}")
        out = self.check_output()
        assert rc == 0, f"jottafs exited {rc} after unmount:\n{out}"
        return out

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)

    def cleanup(self):
        if self.proc.poll() is None or os.path.ismount(self.path):
            self.kill()
        self.logfile.close()
