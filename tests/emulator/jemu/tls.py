"""Test CA and per-host leaf certificates, made with the openssl CLI.

Files in the data directory (kept across restarts):
    ca.pem, ca.key              the test CA (clients trust ca.pem)
    tls/leaf.key                one EC key shared by every leaf certificate
    tls/<host>.pem              leaf certificate for <host>, signed by the CA
"""

import ipaddress
import os
import re
import ssl
import subprocess
import tempfile
import threading

COMMON_HOSTS = ("127.0.0.1", "localhost", "jfs.jottacloud.com", "api.jottacloud.com", "id.jottacloud.com",
                "up.jottacloud.com", "www.jottacloud.com")

_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _run(args):
    r = subprocess.run(["openssl"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))


def san(host):
    try:
        ipaddress.ip_address(host)
        return "IP:" + host
    except ValueError:
        return "DNS:" + host


class CertAuthority:
    def __init__(self, data_dir):
        self.dir = data_dir
        self.ca_pem = os.path.join(data_dir, "ca.pem")
        self.ca_key = os.path.join(data_dir, "ca.key")
        self.tls_dir = os.path.join(data_dir, "tls")
        self.leaf_key = os.path.join(self.tls_dir, "leaf.key")
        self.lock = threading.Lock()
        self.contexts = {}
        os.makedirs(self.tls_dir, exist_ok=True)
        self._ensure_ca()

    def _ensure_ca(self):
        if not (os.path.exists(self.ca_pem) and os.path.exists(self.ca_key)):
            _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", self.ca_key, "-out", self.ca_pem, "-days", "3650",
                  "-sha256", "-subj", "/O=jottaemu/CN=jottaemu test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            os.chmod(self.ca_key, 0o600)
        if not os.path.exists(self.leaf_key):
            _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-out", self.leaf_key])
            os.chmod(self.leaf_key, 0o600)

    def leaf(self, host):
        """Path of the leaf certificate for host (made on first use)."""
        path = os.path.join(self.tls_dir, host.lower() + ".pem")
        if os.path.exists(path):
            return path
        with tempfile.TemporaryDirectory(dir=self.tls_dir) as tmp:
            csr = os.path.join(tmp, "req.csr")
            ext = os.path.join(tmp, "ext.cnf")
            with open(ext, "w") as f:
                f.write("basicConstraints=critical,CA:FALSE\n"
                        "keyUsage=critical,digitalSignature,keyEncipherment\n"
                        "extendedKeyUsage=serverAuth\n"
                        "subjectAltName=%s\n" % san(host))
            _run(["req", "-new", "-key", self.leaf_key, "-out", csr, "-subj", "/CN=" + host])
            out = os.path.join(tmp, "leaf.pem")
            _run(["x509", "-req", "-in", csr, "-CA", self.ca_pem, "-CAkey", self.ca_key,
                  "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "825",
                  "-sha256", "-extfile", ext, "-out", out])
            os.replace(out, path)
        return path

    def default_context(self):
        """Context for direct TLS connections: picks the certificate by SNI
        (127.0.0.1 when the client sends none, as for an IP address)."""
        ctx = self.context("127.0.0.1")
        if ctx.sni_callback is None:
            def pick(sslsock, server_name, _ctx):
                if server_name:
                    try:
                        sslsock.context = self.context(server_name)
                    except (ValueError, RuntimeError):
                        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
                return None
            ctx.sni_callback = pick
        return ctx

    def context(self, host):
        """Server SSLContext presenting a certificate for host."""
        host = host.lower().rstrip(".")
        if not _HOST_RE.match(host):
            raise ValueError("bad host name for TLS: %r" % host)
        with self.lock:
            ctx = self.contexts.get(host)
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(self.leaf(host), self.leaf_key)
                ctx.set_alpn_protocols(["http/1.1"])
                self.contexts[host] = ctx
            return ctx

    def prepare(self, hosts=COMMON_HOSTS):
        for h in hosts:
            self.context(h)
