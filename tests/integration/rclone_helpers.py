"""rclone 1.60 (Debian, unmodified) driven against the emulator.

rclone reaches the hard-coded https://{jfs,api,id,up}.jottacloud.com hosts
through the emulator's CONNECT proxy (HTTPS_PROXY) and trusts its test CA
(--ca-cert).  One RClone object is one rclone.conf with one remote, "jc".
Used by test_rclone_fidelity.py and tests/bench/run.py.  Standard library only.
"""

import json
import os
import subprocess


class RClone:
    def __init__(self, emu, workdir):
        self.emu = emu
        self.conf = os.path.join(workdir, "rclone.conf")
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        self.env.update({"HTTPS_PROXY": emu.url, "HOME": workdir,
                         "XDG_CONFIG_HOME": os.path.join(workdir, ".config"),
                         "XDG_CACHE_HOME": os.path.join(workdir, ".cache")})

    def run(self, *args, check=True, timeout=120):
        cmd = ["rclone", "--config", self.conf, "--ca-cert", self.emu.ca_path] + list(args)
        p = subprocess.run(cmd, env=self.env, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s\nemulator:\n%s" % (
                " ".join(args), p.returncode, p.out, p.err, self.emu.stderr()))
        return p

    def configure(self, token):
        """rclone's standard (personal login token) flow, non-interactively."""
        p = self.run("config", "create", "jc", "jottacloud", "config_type=standard",
                     "config_login_token=" + token, "--non-interactive")
        state = json.loads(p.out)
        # The flow stops at "Use a non-standard device/mountpoint?": answer no.
        while state.get("State"):
            assert state["Option"]["Name"] == "config_non_standard", state
            p = self.run("config", "update", "jc", "--continue", "--state", state["State"],
                         "--result", "false", "--non-interactive")
            state = json.loads(p.out) if p.out.strip() else {}

    def age_token(self):
        """Mark the stored access token expired (as if an hour had passed)."""
        with open(self.conf, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("token = "):
                tok = json.loads(line[len("token = "):])
                tok["expiry"] = "2000-01-01T00:00:00Z"
                lines[i] = "token = " + json.dumps(tok, separators=(",", ":"))
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))

    def config(self):
        """The remote's section of rclone.conf as a dict."""
        out, cur = {}, None
        with open(self.conf, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("["):
                    cur = line.strip("[]")
                elif cur == "jc" and " = " in line:
                    k, _, v = line.partition(" = ")
                    out[k] = v
        return out
