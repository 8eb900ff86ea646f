"""HTTP front end of the Jottacloud emulator: routing, auth, faults, CONNECT proxy.

One plain-HTTP port serves every host by path:
    /jfs/...                                JFS XML API (jfs.jottacloud.com)
    /account/v1/customer                    customer JSON (api.jottacloud.com)
    /files/v1/allocate, /files/v1/purge_trash
    /files/v1/upload/<id>                   data POST (the upload_url of allocate)
    /auth/realms/<realm>/...                OIDC: discovery, token, auth (code grant)
    /_emu/...                               control endpoint (never faulted)
and `CONNECT <any host>:443` is answered 200 and the tunnel is TLS-terminated here
with a certificate from the test CA, then served by the same handler.  A client
may also speak TLS directly to the port (detected from the first byte; the
certificate is picked by SNI, 127.0.0.1 without SNI).  The
emulator never opens an outgoing connection.  URLs it hands out (token_endpoint,
upload_url) use the scheme and Host of the incoming request.

Choices made where docs/jottacloud-api.md section 15 (and elsewhere) is silent:
  * Status codes: allocate 200; data POST 201 Created; commands 200.
  * liststream root element is <filestream>; empty folders appear as <folder>;
    every live folder (the listed one included) once, before its files.
  * mv/cp onto an existing live file overwrites it: the destination gets a new
    revision with the source's content (its older revisions are kept), mv then
    removes the source.  mv onto a trashed file brings the destination back
    (rclone 1.60.1 `moveto` onto an existing file sends dl=true, then mv, and
    needs a live answer); cp onto a trashed file leaves it in the trash (the
    quirk of docs 8.5).
    A case-only rename (a -> A) renames in place.  mv/cp onto a live folder and
    mvDir onto an existing live folder: 400 UniqueFileException.  A trashed item
    of the other kind (or a trashed folder for mvDir) at the destination is
    removed for good to make room.
  * mkDir over a live file, allocate/cphash over a live folder: 400
    UniqueFileException; over a trashed one of the other kind: it is removed.
  * mvDir requires the trailing slash on the source (aeroftp: 404 without it).
  * dl=true on a missing path: 200 with an empty body; rm=true: 404.  dlDir on a
    missing path: 200 empty; rmDir: 404.  dl=true on a folder removes it for good
    (reported by aeroftp), rm=true on a folder: 404.  dlDir/rmDir on a file: 404.
  * Raw ';' in a path: servlet-style stripping of ';...' up to the next '/'.
    Raw '+' in a path: 400 IllegalArgumentException.  '%25' followed by two hex
    digits (a double-encoded name such as %2520): 400 with the plain body
    '400 Bad request'; '%25' followed by anything else is a literal '%'
    (rclone 1.60.1 sends a name 'a%zz' as 'a%25zz').  Control characters,
    '%2F' inside a name, '.'/'..' names, invalid UTF-8: 400.
  * Revisions: mode=bin&revision=N serves completed revision N; 5 completed
    revisions are kept (knob max_revisions); INCOMPLETE revisions of unfinished
    uploads stay resumable; CORRUPT ones older than the current are dropped.
  * Instant upload: identical content (md5+size) anywhere in the account
    (knob dedup).  An upload whose MD5 does not match becomes a CORRUPT
    revision, answered 400 CorruptUploadOpenApiException; its bytes are dropped.
  * Quota: allocate beyond a non-negative capacity -> 507 QuotaExceededException.
  * Customer JSON: every field of rclone's struct; quota = capacity (-1 = unlimited).
  * Trash: dlDir stamps the folder and its live descendants with one time;
    the Trash view lists top-level trashed items of the whole account;
    purge_trash counts those top-level items.  Trash is read-only.
  * A wrong/unknown user in a JFS path (also another existing user): 400
    UsernameNotFoundException.  Revoked/reused refresh families also lose their
    access tokens (the Keycloak session is gone).
  * Uploads: the data POST needs the Bearer token of the allocating user; a
    Range start beyond the bytes held -> 416; more bytes than allocated -> 400;
    when two uploads of one path finish, the later one becomes current.
    allocate without `created` uses `modified`; times have 1 s precision.
  * Mountpoints: Shared, Latest and Links are ordinary (empty) trees; new
    mountpoints are refused on the built-in Jotta device (400).  mode=list
    (pre-1.58 recursive listing) and thumbnails are not implemented (400).
  * Accounts: the internal username is 24 hex digits derived from the login
    name (stable across runs); access tokens are JWT-shaped with sub
    "f:<uuid>:<login>"; the authorization endpoint (any realm, so every service of
    docs 2.4 under its own domain through the CONNECT proxy) approves at once,
    logging in login_hint or the auth_user knob, or answers error=access_denied
    with the auth_deny knob; the phonero realm refuses the client "desktop" and
    the jotta-default scope (docs 2.4); login-token secrets are single use and a
    failed password grant is 400 invalid_grant "Invalid user credentials".
"""

import base64
import hashlib
import json
import os
import queue
import re
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import xmldoc
from .util import (ServiceError, E_MISSING_COMMAND, E_NO_PATH, E_NO_FILE, E_INVALID_ARG, E_UNIQUE,
                   E_ILLEGAL_ARG, E_BAD_CREDENTIALS, E_USERNAME, E_RANGE,
                   check_name, has_control, hex_id, parse_jotta_time, parse_rfc3339,
                   reason, uuid4)

CLIENTS = ("jottacli", "desktop", "desktop-win", "desktop-mac")
CHUNK = 1 << 20
SMALL_BODY = 1 << 20
MISSING_COMMAND = ("POST Request is missing multipart content or don't dont have any "
                   "command parameters")
_HOST_OK = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,300}$")
_DOUBLE_ENC = re.compile(r"%25[0-9A-Fa-f]{2}")
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def missing_command():
    return ServiceError(500, E_MISSING_COMMAND, MISSING_COMMAND)


class Abort(Exception):
    """Stop handling this connection now (fault injection, broken client)."""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def fake_jwt(payload):
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "jottaemu"}).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    return head + "." + body + "." + b64url(os.urandom(32))


def make_login_token(store, login, well_known_link, realm="jottacloud"):
    """Personal login token: unpadded base64url JSON (docs 2.1)."""
    secret = store.new_login_secret(login)
    doc = {"username": login, "realm": realm, "well_known_link": well_known_link,
           "auth_token": secret}
    return b64url(json.dumps(doc).encode("utf-8"))


def decode_jfs_path(raw):
    """Raw URL path below '/jfs' -> (list of names, trailing slash).

    Mirrors the service's path handling (docs 4.3)."""
    if _DOUBLE_ENC.search(raw):
        raise ServiceError(400, "", body=b"400 Bad request")
    trailing = raw.endswith("/")
    segs = []
    for seg in raw.split("/"):
        seg = seg.split(";", 1)[0]  # servlet path parameters are cut off
        segs.append(seg)
    stripped = "/".join(segs)
    if "+" in stripped:
        raise ServiceError(400, E_ILLEGAL_ARG, "Unable to validate decoded path: "
                           + urllib.parse.unquote(stripped, errors="replace"))
    names = []
    for seg in segs:
        if seg == "":
            continue
        try:
            name = urllib.parse.unquote_to_bytes(seg).decode("utf-8")
        except UnicodeDecodeError:
            raise ServiceError(400, E_ILLEGAL_ARG, "Unable to validate decoded path: "
                               + urllib.parse.unquote(stripped, errors="replace"))
        names.append(name)
    shown = "/" + "/".join(names)
    for n in names:
        if has_control(n) or "/" in n or n in (".", ".."):
            raise ServiceError(400, E_ILLEGAL_ARG, "Unable to validate decoded path: "
                               + shown.encode("unicode_escape").decode("ascii"))
        check_name(n, shown)
    return names, trailing


class EmuServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, store, knobs, stats, ca, verbose=False):
        self.store = store
        self.knobs = knobs
        self.stats = stats
        self.ca = ca
        self.verbose = verbose
        self.upload_locks = {}
        self.upload_hash = {}  # upload id -> (position, md5 object)
        self.meta_lock = threading.Lock()
        self.started = time.time()
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = super().get_request()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return sock, addr

    def upload_lock(self, uid):
        with self.meta_lock:
            lk = self.upload_locks.get(uid)
            if lk is None:
                lk = self.upload_locks[uid] = threading.Lock()
            return lk

    def handle_error(self, request, client_address):
        log("connection error from %s: %s" % (client_address[0],
                                                sys.exc_info()[1]))


def log(msg):
    sys.stderr.write("jottaemu: %s\n" % msg)
    sys.stderr.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jottaemu"
    sys_version = ""
    timeout = 300

    def version_string(self):
        return "jottaemu"

    # ------------------------------------------------------------ connection

    def setup(self):
        super().setup()
        self.tls_host = None
        self.aborting = False
        self.kind = "other"
        self.family = "xml"
        self.started_response = False
        self.status = 0
        # The same port speaks TLS too: a handshake record starts with 0x16.
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if first == b"\x16":
            self.start_tls(self.server.ca.default_context(), "127.0.0.1")

    def start_tls(self, ctx, host):
        """Wrap the connection in TLS and serve HTTP on it; False on failure."""
        try:
            tls = ctx.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if self.server.verbose:
                log("TLS handshake for %s failed: %s" % (host, e))
            self.close_connection = True
            self.tls_host = "failed"
            return False
        self.connection = tls
        self.rfile = tls.makefile("rb", -1)
        self.wfile = socketserver._SocketWriter(tls)
        self.tls_host = host
        return True

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        if self.aborting or self.tls_host:
            # Abortive close: linger 0 makes close() send a RST.  TLS sockets are
            # separate objects from the server's request socket, so close here.
            try:
                self.connection.close()
            except OSError:
                pass

    def reset_connection(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.aborting = True
        self.close_connection = True
        raise Abort()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            log("%s %s" % (self.address_string(), fmt % args))

    def send_error(self, code, message=None, explain=None):
        """Malformed requests seen by http.server itself: an XML error, then close."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # always answer with a status line
        body = xmldoc.error_xml(code, E_ILLEGAL_ARG, message or reason(code))
        try:
            self.send_response(code, reason(code))
            self.send_header("Content-Type", "application/xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def handle_one_request(self):
        if self.tls_host == "failed":
            self.close_connection = True
            return
        try:
            super().handle_one_request()
        except Abort:
            self.close_connection = True
        except (ConnectionError, socket.timeout, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        host = host.strip("[]")
        if self.tls_host or port != "443" or not host:
            return self.plain(403, "CONNECT is only offered to port 443\n", close=True)
        try:
            ctx = self.server.ca.context(host)
        except ValueError:
            return self.plain(400, "bad CONNECT host\n", close=True)
        except Exception as e:  # openssl failure
            log("cannot make a certificate for %s: %s" % (host, e))
            return self.plain(502, "no certificate for this host\n", close=True)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        if self.start_tls(ctx, host):
            self.close_connection = False

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # ------------------------------------------------------------ request bodies

    def _body_setup(self):
        self._chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        self._chunk_left = 0
        self._body_done = False
        self._body_left = 0
        if self._chunked:
            return
        cl = self.headers.get("Content-Length")
        if cl is None:
            self._body_left = 0
        else:
            try:
                self._body_left = int(cl)
                if self._body_left < 0:
                    raise ValueError
            except ValueError:
                self._body_left = 0
                self._body_done = True
                self.close_connection = True
                raise ServiceError(400, E_INVALID_ARG, "bad Content-Length")
        self._body_done = self._body_left == 0

    def body_length(self):
        return None if self._chunked else self._body_left

    def _read_some(self, mv, left, eof_message):
        """Read at most min(len(mv), left) bytes into mv; EOF is an error."""
        n = self.rfile.readinto(mv[:min(len(mv), left)])
        if not n:
            raise ConnectionError(eof_message)
        return n

    def read_into(self, mv):
        """Read up to len(mv) body bytes; 0 at the end of the body."""
        if self._body_done:
            return 0
        if self._chunked:
            if self._chunk_left == 0:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("EOF in chunked body")
                try:
                    self._chunk_left = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise ServiceError(400, E_INVALID_ARG, "bad chunked encoding")
                if self._chunk_left == 0:
                    while True:
                        t = self.rfile.readline(1024)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    self._body_done = True
                    return 0
            n = self._read_some(mv, self._chunk_left, "EOF in chunked body")
            self._chunk_left -= n
            if self._chunk_left == 0:
                self.rfile.readline(16)
        else:
            n = self._read_some(mv, self._body_left, "EOF in request body")
            self._body_left -= n
            if self._body_left == 0:
                self._body_done = True
        self.server.stats.add("bytes_received", n)
        return n

    def read_body(self, limit=SMALL_BODY):
        length = self.body_length()
        if length is not None and length > limit:
            self.close_connection = True
            raise ServiceError(413, E_INVALID_ARG, "request body too large")
        out = bytearray()
        buf = bytearray(65536)
        mv = memoryview(buf)
        while True:
            n = self.read_into(mv)
            if not n:
                break
            out += mv[:n]
            if len(out) > limit:
                self.close_connection = True
                raise ServiceError(413, E_INVALID_ARG, "request body too large")
        return bytes(out)

    def drain(self):
        """Consume a small leftover body to keep the connection; else close it."""
        if self._body_done:
            return
        length = self.body_length()
        if length is not None and length <= SMALL_BODY:
            try:
                self.read_body()
                return
            except (ServiceError, ConnectionError, OSError):
                pass
        self.close_connection = True

    # ------------------------------------------------------------ responses

    def plain(self, status, text, close=False):
        if close:
            self.close_connection = True
        self.send(status, text.encode(), "text/plain; charset=UTF-8")

    def send(self, status, body=b"", ctype=None, headers=None, kind=None):
        self.send_response(status, reason(status))
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.started_response = True
        self.status = status
        self.server.stats.count("statuses", str(status))
        if self.command == "HEAD" or not body:
            return
        self.write_body(body, kind or self.kind)

    def send_json(self, status, obj, headers=None):
        self.send(status, json.dumps(obj).encode(), "application/json;charset=UTF-8", headers)

    def send_xml(self, status, body, headers=None):
        self.send(status, body, "application/xml; charset=UTF-8", headers)

    def _cut_point(self, length, kind):
        """(cut, mode) for the body faults: where to stop and how."""
        k = self.server.knobs
        if kind == "control":
            return length, None
        if length > 0 and k.roll("reset_rate", "reset_kinds", kind):
            self.server.stats.count("faults", "reset")
            return max(1, int(length * k.fraction())) if length > 1 else 0, "reset"
        if length > 0 and k.roll("truncate_rate", "truncate_kinds", kind):
            self.server.stats.count("faults", "truncate")
            return int(length * k.fraction()) if length > 1 else 0, "truncate"
        return length, None

    def _finish_cut(self, mode):
        if mode == "reset":
            time.sleep(0.05)  # let the partial body reach the client first
            self.reset_connection()
        if mode == "truncate":
            self.close_connection = True
            raise Abort()

    def write_body(self, body, kind):
        cut, mode = self._cut_point(len(body), kind)
        rate = 0 if kind == "control" else \
            self.server.knobs.for_kind("bandwidth", "bandwidth_kinds", kind)
        mv = memoryview(body)[:cut]
        if rate > 0:
            t0 = time.monotonic()
            step = max(1024, min(CHUNK, rate // 20))
            for i in range(0, len(mv), step):
                self.wfile.write(mv[i:i + step])
                self._throttle(t0, i + step, rate)
        else:
            self.wfile.write(mv)
        self.server.stats.add("bytes_sent", cut)
        self._finish_cut(mode)

    def send_file(self, status, f, offset, length, ctype, headers):
        self.send_response(status, reason(status))
        self.send_header("Content-Type", ctype)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.started_response = True
        self.status = status
        self.server.stats.count("statuses", str(status))
        if self.command == "HEAD":
            return
        cut, mode = self._cut_point(length, "download")
        rate = self.server.knobs.for_kind("bandwidth", "bandwidth_kinds", "download")
        self.wfile.flush()
        sent = 0
        if rate > 0:
            t0 = time.monotonic()
            step = max(1024, min(CHUNK, rate // 20))
            while sent < cut:
                n = self._sendfile(f, offset + sent, min(step, cut - sent))
                if not n:
                    break
                sent += n
                self._throttle(t0, sent, rate)
        elif cut:
            sent = self._sendfile(f, offset, cut)
        self.server.stats.add("bytes_sent", sent)
        self.server.stats.add("download_bytes", sent)
        if sent < cut:
            self.close_connection = True
            raise Abort()
        self._finish_cut(mode)

    def _sendfile(self, f, offset, count):
        """Send @count bytes of @f from @offset; the bytes sent.  A TLS socket
        gets them in 256 KiB writes, which OpenSSL cuts into full 16 KiB records
        as a web server's TLS does (SSLSocket.sendfile writes 8 KiB at a time:
        half-size records, and most of this process's CPU per byte)."""
        if not isinstance(self.connection, ssl.SSLSocket):
            return self.connection.sendfile(f, offset, count)
        buf = bytearray(min(count, 256 * 1024))
        mv = memoryview(buf)
        sent = 0
        while sent < count:
            n = os.preadv(f.fileno(), [mv[:min(len(buf), count - sent)]], offset + sent)
            if n <= 0:
                break
            self.connection.sendall(mv[:n])
            sent += n
        return sent

    @staticmethod
    def _throttle(t0, done, rate):
        ahead = done / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)

    # ------------------------------------------------------------ dispatch

    def base_url(self):
        host = self.headers.get("Host", "")
        if not _HOST_OK.match(host):
            host = self.tls_host or "127.0.0.1:%d" % self.server.server_address[1]
        return ("https://" if self.tls_host else "http://") + host

    def dispatch(self):
        self.kind = "other"
        self.family = "xml"
        self.started_response = False
        self.status = 0
        self.login = None
        self._chunked = False
        self._body_done = True
        try:
            self._body_setup()
            target = self.path
            if "://" in target.split("?", 1)[0]:
                target = "/" + target.split("://", 1)[1].partition("/")[2]
            raw_path, _, raw_query = target.partition("?")
            raw_path = raw_path.split("#", 1)[0]
            self.raw_path = raw_path
            self.query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True,
                                                     errors="replace"))
            if raw_path == "/_emu" or raw_path.startswith("/_emu/"):
                self.family = "json"
                self.kind = "control"  # never faulted
                return self.control(raw_path[len("/_emu"):])
            route = self.classify()
            self.server.stats.count("requests", self.kind)
            if self.pre_faults():
                return
            route()
        except ServiceError as e:
            if self.started_response:
                self.close_connection = True
            else:
                self.send_service_error(e)
        except Abort:
            self.close_connection = True
        except (ConnectionError, socket.timeout, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as e:
            log("internal error on %s %s: %s: %s | %s" % (
                self.command, self.path[:200], type(e).__name__, e,
                " <- ".join("%s:%d" % (os.path.basename(fr.filename), fr.lineno)
                            for fr in reversed(traceback.extract_tb(e.__traceback__)[-4:]))))
            self.close_connection = True
            if not self.started_response:
                try:
                    self.send_service_error(ServiceError(500, "java.lang.RuntimeException",
                                                         "internal error"))
                except OSError:
                    pass
        finally:
            if not self.close_connection and not self._body_done:
                self.drain()
            if self.status >= 500 and not self.server.verbose:
                log("%s %s -> %d" % (self.command, self.path[:200], self.status))

    def send_service_error(self, e):
        if self.server.knobs["error_echo_headers"]:
            # Fault injection: a careless proxy or debug build that puts the
            # request headers (Authorization included) into its error text.
            echo = " [request headers: %s]" % "; ".join(
                "%s: %s" % (k, v) for k, v in self.headers.items())
            if e.body is not None:
                e.body = (e.body if isinstance(e.body, bytes) else e.body.encode()) \
                    + echo.encode()
            else:
                e.message = (e.message or "") + echo
        if e.body is not None:
            return self.send(e.status, e.body, "text/plain", e.headers)
        if self.family == "xml":
            return self.send_xml(e.status, xmldoc.error_xml(e.status, e.exception, e.message),
                                 e.headers)
        if self.family == "oauth":
            return self.send_json(e.status, {"error": e.exception,
                                             "error_description": e.message}, e.headers)
        short = e.exception.rsplit(".", 1)[-1]
        return self.send_json(e.status, {"code": e.status, "message": (
            e.exception + (": " + e.message if e.message else "")), "cause": "",
            "error_id": short, "x-id": "%012d" % (int.from_bytes(os.urandom(5), "big"))},
            e.headers)

    def classify(self):
        """Set self.kind / self.family; return the handler to run."""
        p = self.raw_path
        m = self.command
        if p == "/jfs" or p.startswith("/jfs/"):
            self.family = "xml"
            return self._classify_jfs(p[4:])
        if p.startswith("/auth/realms/"):
            self.family = "oauth"
            rest = p[len("/auth/realms/"):]
            realm, _, tail = rest.partition("/")
            if tail == ".well-known/openid-configuration":
                self.kind = "oidc"
                return lambda: self.h_discovery(realm)
            if tail == "protocol/openid-connect/token":
                self.kind = "token"
                return self.h_token
            if tail == "protocol/openid-connect/auth":
                self.kind = "oidc"
                return lambda: self.h_authorize(realm)
            self.kind = "oidc"
            return lambda: self.send_json(404, {"error": "not_found",
                                                "error_description": "Unknown endpoint"})
        self.family = "json"
        if p == "/account/v1/customer":
            self.kind = "customer"
            return self.h_customer
        if p == "/files/v1/allocate":
            self.kind = "allocate"
            return self.h_allocate
        if p.startswith("/files/v1/upload/"):
            self.kind = "upload"
            return lambda: self.h_upload(p[len("/files/v1/upload/"):])
        if p == "/files/v1/purge_trash":
            self.kind = "purge"
            return self.h_purge
        if m == "GET" and p in ("/", ""):
            return lambda: self.plain(200, "jottaemu: a fake Jottacloud for tests\n")
        return lambda: self.send_service_error(ServiceError(
            404, "NotFoundException", "No such endpoint: %s %s" % (m, p)))

    def _classify_jfs(self, raw):
        try:
            decoded = decode_jfs_path(raw)
        except ServiceError as e:
            decoded = e  # answered by h_jfs, after the faults
        mode = self.query.get("mode", "")
        if self.command == "POST":
            self.kind = "command"
        elif mode == "bin":
            self.kind = "download"
        elif mode == "liststream":
            self.kind = "liststream"
        elif mode in ("enableShare", "disableShare"):
            self.kind = "share"
        elif isinstance(decoded, ServiceError):
            self.kind = "folder"
        else:
            names = decoded[0]
            self.kind = {0: "user", 1: "user", 2: "device"}.get(len(names), "folder")
            if len(names) == 3 and names[2].lower() == "trash":
                self.kind = "trash"
            elif len(names) >= 4:
                try:
                    st = self.server.store
                    node = st.walk(st.mountpoint(names[0], names[1], names[2]), names[3:])
                    if node is not None and node["kind"] == "file":
                        self.kind = "file"
                except ServiceError:
                    pass
        return lambda: self.h_jfs(decoded)

    def pre_faults(self):
        """Outage, 429 bursts, injected errors, latency.  True if answered."""
        k = self.server.knobs
        st = self.server.stats
        if k.outage_now():
            st.count("faults", "outage")
            if k["outage_mode"] == "503":
                self.close_connection = True
                self.send_service_error(ServiceError(503, "ServiceUnavailableException",
                                                     "outage"))
                return True
            self.reset_connection()
        if k.take_429(self.kind):
            st.count("faults", "429")
            self.send_service_error(ServiceError(
                429, "TooManyRequestsException", "rate limited",
                headers={"Retry-After": str(k["retry_after"])}))
            return True
        if k.roll("error_rate", "error_kinds", self.kind):
            st.count("faults", "error")
            code = k["error_status"]
            self.send_service_error(ServiceError(code, "InjectedFault", "injected error"))
            return True
        ms = k.for_kind("latency_ms", "latency_kinds", self.kind)
        if ms > 0:
            st.count("faults", "latency")
            time.sleep(ms / 1000.0)
        return False

    def bearer(self):
        """Login name of a valid bearer token, else a 401 in the API's style."""
        auth = self.headers.get("Authorization", "")
        login = None
        if auth[:7].lower() == "bearer ":
            login = self.server.store.check_access(auth[7:].strip())
        if login is None:
            if self.family == "xml":
                raise ServiceError(401, E_BAD_CREDENTIALS, "Bad credentials",
                                   headers={"WWW-Authenticate": 'Bearer realm="jottacloud"'})
            raise ServiceError(401, "UnauthorizedException", "Bad credentials",
                               headers={"WWW-Authenticate": 'Bearer realm="jottacloud"'})
        self.login = login
        return self.server.store.user_by_login(login)

    # ------------------------------------------------------------ OIDC

    def h_discovery(self, realm):
        if self.command != "GET":
            raise ServiceError(405, "method_not_allowed", "use GET")
        iss = self.base_url() + "/auth/realms/" + realm
        oc = iss + "/protocol/openid-connect"
        doc = {
            "issuer": iss,
            "authorization_endpoint": oc + "/auth",
            "token_endpoint": oc + "/token",
            "introspection_endpoint": oc + "/token/introspect",
            "userinfo_endpoint": oc + "/userinfo",
            "end_session_endpoint": oc + "/logout",
            "jwks_uri": oc + "/certs",
            "check_session_iframe": oc + "/login-status-iframe.html",
            "grant_types_supported": ["authorization_code", "implicit", "refresh_token",
                                      "password", "client_credentials"],
            "response_types_supported": ["code", "none", "id_token", "token",
                                         "id_token token", "code id_token", "code token",
                                         "code id_token token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "request_object_signing_alg_values_supported": ["none", "RS256"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "registration_endpoint": iss + "/clients-registrations/openid-connect",
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic",
                                                      "client_secret_post"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["aud", "sub", "iss", "auth_time", "name", "given_name",
                                 "family_name", "preferred_username", "email"],
            "claim_types_supported": ["normal"],
            "claims_parameter_supported": False,
            "scopes_supported": ["openid", "offline_access", "jotta-default"],
            "request_parameter_supported": True,
            "request_uri_parameter_supported": True,
            "code_challenge_methods_supported": ["plain", "S256"],
            "tls_client_certificate_bound_access_tokens": True,
        }
        self.send_json(200, doc)

    def h_authorize(self, realm):
        q = self.query
        if q.get("response_type") != "code":
            raise ServiceError(400, "unsupported_response_type", "only response_type=code")
        if q.get("client_id") not in CLIENTS:
            raise ServiceError(400, "unauthorized_client", "Client not found.")
        redirect = q.get("redirect_uri", "")
        if not redirect:
            raise ServiceError(400, "invalid_request", "Missing parameter: redirect_uri")
        scopes = q.get("scope", "").split()
        # docs 2.4: Phonero refuses the client "desktop" (desktop-win and desktop-mac
        # work) and fails when the jotta-default scope is asked for.
        if realm == "phonero" and q["client_id"] not in ("desktop-win", "desktop-mac"):
            raise ServiceError(400, "unauthorized_client", "Client not found.")
        error = None
        if realm == "phonero" and "jotta-default" in scopes:
            error = {"error": "invalid_scope",
                     "error_description": "Invalid scopes: " + " ".join(scopes)}
        elif self.server.knobs["auth_deny"]:
            # what Keycloak sends back when the user cancels the consent/login
            error = {"error": "access_denied"}
        if error:
            params = dict(error)
        else:
            login = q.get("login_hint") or self.server.knobs["auth_user"]
            self.server.store.ensure_user(login)
            code = self.server.store.new_code(login, q["client_id"], redirect,
                                              q.get("scope", ""))
            params = {"code": code, "session_state": uuid4()}
        if "state" in q:
            params["state"] = q["state"]
        loc = redirect + ("&" if "?" in redirect else "?") + urllib.parse.urlencode(params)
        self.send(302, b"", None, {"Location": loc})

    def _client_auth(self, form):
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            if self.server.knobs["reject_basic_auth"]:
                raise ServiceError(401, "unauthorized_client",
                                   "INVALID_CREDENTIALS: Invalid client credentials")
            try:
                raw = base64.b64decode(auth[6:].strip()).decode("utf-8")
                cid = urllib.parse.unquote(raw.partition(":")[0])
            except (ValueError, UnicodeDecodeError):
                raise ServiceError(400, "invalid_request", "bad Basic authorization")
            return cid
        cid = form.get("client_id")
        if not cid:
            raise ServiceError(401, "unauthorized_client",
                               "INVALID_CREDENTIALS: Invalid client credentials")
        return cid

    def _grant(self, login, fid, client_id, scope, grant):
        lifetime = self.server.knobs["token_lifetime"]
        now = int(time.time())
        sub = "f:%s:%s" % (uuid4(), login)
        access = fake_jwt({"exp": now + lifetime, "iat": now, "jti": uuid4(),
                           "iss": self.base_url() + "/auth/realms/jottacloud", "sub": sub,
                           "typ": "Bearer", "azp": client_id, "session_state": fid,
                           "scope": scope, "preferred_username": login})
        refresh = fake_jwt({"iat": now, "jti": uuid4(), "typ": "Offline", "azp": client_id,
                            "session_state": fid, "scope": scope})
        self.server.store.issue_tokens(fid, login, access, refresh, lifetime)
        self.server.stats.count("grants", grant)
        self.send_json(200, {
            "access_token": access, "expires_in": lifetime, "refresh_expires_in": 0,
            "refresh_token": refresh, "token_type": "Bearer",
            "id_token": fake_jwt({"sub": sub, "iat": now, "azp": client_id}),
            "not-before-policy": 0, "session_state": fid, "scope": scope,
        }, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def h_token(self):
        if self.command != "POST":
            raise ServiceError(405, "invalid_request", "HTTP method not allowed")
        try:
            form = dict(urllib.parse.parse_qsl(self.read_body().decode("utf-8"),
                                               keep_blank_values=True))
        except UnicodeDecodeError:
            raise ServiceError(400, "invalid_request", "body is not UTF-8")
        store = self.server.store
        gt = form.get("grant_type", "")
        try:
            if gt == "password":
                cid = self._client_auth(form)
                if cid not in CLIENTS:
                    raise ServiceError(401, "invalid_client",
                                       "Invalid client or Invalid client credentials")
                login = form.get("username", "")
                if not store.user_by_login(login) or \
                        not store.consume_login_secret(login, form.get("password", "")):
                    raise ServiceError(400, "invalid_grant", "Invalid user credentials")
                scope = form.get("scope", "openid")
                fid = store.new_family(login, cid, scope)
                return self._grant(login, fid, cid, scope, "password")
            if gt == "refresh_token":
                rt = form.get("refresh_token")
                cid = self._client_auth(form)
                if not rt:
                    raise ServiceError(400, "invalid_request", "Missing parameter: refresh_token")
                try:
                    fam = store.use_refresh_token(rt, cid)
                except ValueError as e:
                    raise ServiceError(400, "invalid_grant", str(e))
                return self._grant(fam["login"], fam["id"], cid, fam["scope"], "refresh_token")
            if gt == "authorization_code":
                cid = self._client_auth(form)
                row = store.use_code(form.get("code", ""), cid, form.get("redirect_uri", ""))
                if row is None:
                    raise ServiceError(400, "invalid_grant", "Code not valid")
                fid = store.new_family(row["login"], cid, row["scope"] or "openid")
                return self._grant(row["login"], fid, cid, row["scope"] or "openid",
                                   "authorization_code")
            raise ServiceError(400, "unsupported_grant_type", "Unsupported grant_type")
        except ServiceError:
            self.server.stats.add("grant_errors", 1)
            raise

    # ------------------------------------------------------------ JSON API

    def h_customer(self):
        user = self.bearer()
        if self.command != "GET":
            raise ServiceError(405, "MethodNotAllowedException", "use GET")
        cap = self.server.knobs["capacity"]
        self.send_json(200, {
            "username": user["username"], "email": user["email"], "name": user["name"],
            "country_code": "NO", "language_code": "en", "customer_group_code": "CORE",
            "brand_code": "JOTTA", "account_type": "unlimited" if cap < 0 else "free",
            "subscription_type": "PERSONAL", "usage": self.server.store.usage(user["username"]),
            "quota": cap, "business_usage": 0, "business_quota": 0, "write_locked": False,
            "read_locked": False, "locked_cause": None,
            "web_hash": hashlib.md5(("web" + user["username"]).encode()).hexdigest(),
            "android_hash": hashlib.md5(("and" + user["username"]).encode()).hexdigest(),
            "ios_hash": hashlib.md5(("ios" + user["username"]).encode()).hexdigest(),
        })

    def h_purge(self):
        user = self.bearer()
        if self.command != "POST":
            raise ServiceError(405, "MethodNotAllowedException", "use POST")
        self.send_json(200, self.server.store.purge_trash(user["username"]))

    def h_allocate(self):
        user = self.bearer()
        if self.command != "POST":
            raise ServiceError(405, "MethodNotAllowedException", "use POST")
        try:
            req = json.loads(self.read_body().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ServiceError(400, E_INVALID_ARG, "request body is not JSON")
        if not isinstance(req, dict):
            raise ServiceError(400, E_INVALID_ARG, "request body is not a JSON object")
        path = req.get("path")
        size = req.get("bytes")
        md5 = req.get("md5")
        if not isinstance(path, str) or not path.startswith("/jfs/"):
            raise ServiceError(400, E_INVALID_ARG, "path must start with /jfs/")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2 ** 63:
            raise ServiceError(400, E_INVALID_ARG, "bytes must be a non-negative integer")
        if not isinstance(md5, str) or not _MD5.match(md5):
            raise ServiceError(400, E_INVALID_ARG, "md5 must be 32 hex digits")
        md5 = md5.lower()
        now = int(time.time())
        modified = parse_rfc3339(req.get("modified")) if "modified" in req else now
        created = parse_rfc3339(req.get("created")) if "created" in req else modified
        if modified is None or created is None:
            raise ServiceError(400, E_INVALID_ARG, "created/modified must be RFC 3339 "
                               "or epoch milliseconds")
        names = [p for p in path[len("/jfs/"):].split("/") if p != ""]
        if len(names) < 3:
            raise ServiceError(400, E_INVALID_ARG, "path must name a file below a mountpoint")
        st = self.server.store
        mp = st.mountpoint(user["username"], names[0], names[1])
        if st.is_trash(mp):
            raise ServiceError(400, E_INVALID_ARG, "cannot upload to " + mp["name"])
        cap = self.server.knobs["capacity"]
        if cap >= 0 and st.usage(user["username"]) + size > cap:
            raise ServiceError(507, "QuotaExceededException", "quota exceeded")
        handler = req.get("conflict_handler")
        existing = st.walk(mp, names[2:])
        if handler == "REJECT_CONFLICTS" and existing is not None and \
                existing["deleted"] is None and existing["cur_rev"] is not None:
            cur = st.rev(existing["cur_rev"])
            if cur["md5"] != md5 or cur["size"] != size:
                raise ServiceError(409, E_UNIQUE, "file already exists: " + path)
        res = st.allocate(self.login, mp, names[2:], size, md5, created, modified, now,
                          self.server.knobs["dedup"], self.server.knobs["max_revisions"], path)
        if res["state"] == "COMPLETED":
            self.server.stats.add("instant_uploads", 1)
            url = ""
        else:
            url = self.base_url() + "/files/v1/upload/" + res["upload_id"]
        self.send_json(200, {"name": names[-1], "path": path, "state": res["state"],
                             "upload_id": res["upload_id"], "upload_url": url,
                             "bytes": size, "resume_pos": res["resume_pos"]})

    def h_upload(self, uid):
        self.bearer()
        if self.command != "POST":
            raise ServiceError(405, "MethodNotAllowedException", "use POST")
        srv = self.server
        st = srv.store
        up = st.upload(uid)
        if up is None or up["login"] != self.login:
            raise ServiceError(404, "NoSuchUploadException", "unknown upload id")
        lock = srv.upload_lock(uid)
        if not lock.acquire(timeout=60):
            raise ServiceError(409, "ConcurrentUploadException", "upload already in progress")
        try:
            self._upload_locked(uid)
        finally:
            lock.release()

    def _upload_locked(self, uid):
        srv = self.server
        st = srv.store
        up = st.upload(uid)
        if up is None:
            raise ServiceError(404, "NoSuchUploadException", "upload already finished")
        start, end = 0, None
        rh = self.headers.get("Range") or self.headers.get("Content-Range")
        if rh:
            m = re.match(r"^\s*bytes[ =](\d+)-(\d*)(?:/\d+|/\*)?\s*$", rh)
            if not m:
                raise ServiceError(400, E_INVALID_ARG, "bad Range header: " + rh)
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else None
        length = self.body_length()
        path = st.partial_path(uid)
        have = os.path.getsize(path) if os.path.exists(path) else 0
        if have < up["received"]:
            st.upload_progress(uid, have)  # lost bytes (e.g. a crash): resume earlier
            up = st.upload(uid)
        if start > up["received"]:
            self.close_connection = True
            raise ServiceError(416, E_RANGE, "resume position is %d, not %d"
                               % (up["received"], start),
                               headers={"Range": "bytes=0-%d" % (up["received"] - 1)})
        if length is not None:
            if start + length > up["size"] or (end is not None and end != start + length - 1):
                self.close_connection = True
                raise ServiceError(400, E_INVALID_ARG, "body of %d bytes from %d does not fit "
                                   "a file of %d bytes" % (length, start, up["size"]))
        with srv.meta_lock:
            cached = srv.upload_hash.pop(uid, None)
        if cached and cached[0] == start:
            h = cached[1]
        else:
            h = hashlib.md5()
            with open(path, "rb") if start else open(os.devnull, "rb") as f:
                left = start
                while left > 0:
                    b = f.read(min(CHUNK, left))
                    if not b:
                        break
                    h.update(b)
                    left -= len(b)
        reset_at = None
        if length and srv.knobs.roll("reset_rate", "reset_kinds", "upload"):
            srv.stats.count("faults", "reset")
            reset_at = start + max(1, int(length * srv.knobs.fraction()))
        rate = srv.knobs.for_kind("bandwidth", "bandwidth_kinds", "upload")
        # MD5 is the slowest step (~450 MB/s on one core): hash in a helper
        # thread while this one receives and writes the next chunk.
        hasher = PipelinedMD5(h) if (length is None or length >= 8 * CHUNK) else None
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        pos = start
        broken = None
        own = bytearray(CHUNK)
        try:
            os.ftruncate(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
            t0 = time.monotonic()
            while True:
                buf = hasher.buffer() if hasher else own
                want = len(buf)
                if reset_at is not None:
                    want = min(want, reset_at - pos)
                    if want <= 0:
                        broken = "reset"
                        break
                if rate > 0:
                    want = min(want, max(1024, rate // 20))
                try:
                    n = self.read_into(memoryview(buf)[:want])
                except (ConnectionError, socket.timeout, OSError, ssl.SSLError) as e:
                    broken = e
                    break
                if not n:
                    break
                chunk = memoryview(buf)[:n]
                while chunk:
                    w = os.write(fd, chunk)
                    chunk = chunk[w:]
                if hasher:
                    hasher.submit(buf, n)
                else:
                    h.update(memoryview(buf)[:n])
                pos += n
                if up["size"] < pos:
                    break
                if rate > 0:
                    self._throttle(t0, pos - start, rate)
        finally:
            os.close(fd)
            if hasher:
                hasher.close()
        srv.stats.add("upload_bytes", pos - start)
        st.upload_progress(uid, pos)
        if pos > up["size"]:
            self.close_connection = True
            raise ServiceError(400, E_INVALID_ARG, "more data than the allocated %d bytes"
                               % up["size"])
        if broken is not None or pos < up["size"]:
            with srv.meta_lock:
                srv.upload_hash[uid] = (pos, h)
        if broken == "reset":
            self.reset_connection()
        if broken is not None:
            self.close_connection = True
            raise Abort()
        if pos < up["size"]:
            raise ServiceError(420, "IncompleteUploadOpenApiException",
                               "received %d of %d bytes" % (pos, up["size"]))
        whole = h.hexdigest()
        res = st.finish_upload(uid, whole == up["md5"], int(time.time()),
                               srv.knobs["max_revisions"])
        with srv.meta_lock:
            srv.upload_locks.pop(uid, None)
        if res is None:
            raise ServiceError(404, "NoSuchUploadException", "upload vanished")
        node, rev = res
        if whole != up["md5"]:
            raise ServiceError(400, "CorruptUploadOpenApiException",
                               "md5 of the received content is %s, expected %s"
                               % (whole, up["md5"]))
        self.send_json(201, {"path": up["path"], "content_id": hex_id(16),
                             "bytes": up["size"], "md5": whole,
                             "modified": int(rev["modified"]) * 1000})

    # ------------------------------------------------------------ JFS

    def h_jfs(self, decoded):
        if isinstance(decoded, ServiceError):
            raise decoded
        names, trailing = decoded
        user = self.bearer()
        st = self.server.store
        if not names or names[0] != user["username"]:
            raise ServiceError(400, E_USERNAME, "Username not found in url!")
        m = self.command
        if m not in ("GET", "HEAD", "POST"):
            raise ServiceError(405, E_INVALID_ARG, "method not allowed")
        if len(names) == 1:
            if m == "POST":
                raise missing_command()
            return self.send_xml(200, xmldoc.user_doc(st, user, self.server.knobs["capacity"]))
        if len(names) == 2:
            return self.jfs_device(user, names[1])
        if m == "POST" and len(names) == 3 and not self._command():
            return self.jfs_new_mountpoint(user, names)
        mp = st.mountpoint(user["username"], names[1], names[2])
        rest = names[3:]
        if st.is_trash(mp):
            return self.jfs_trash(mp, rest)
        node = st.walk(mp, rest)
        if m == "POST":
            return self.jfs_command(user, mp, rest, node, trailing)
        return self.jfs_get(mp, rest, node)

    def jfs_device(self, user, name):
        st = self.server.store
        if self.command == "POST":
            if st.child(user["root"], name) is not None:
                raise missing_command()
            dtype = (self.query.get("type") or "WORKSTATION").upper()
            dev = st.create_device(user["username"], name, dtype, int(time.time()))
            return self.send_xml(200, xmldoc.device_doc(st, dev))
        return self.send_xml(200, xmldoc.device_doc(st, st.device(user["username"], name)))

    def jfs_new_mountpoint(self, user, names):
        st = self.server.store
        dev = st.device(user["username"], names[1])
        if st.child(dev["id"], names[2]) is not None:
            raise missing_command()
        mp = st.create_mountpoint(dev, names[2], int(time.time()))
        return self.send_xml(200, xmldoc.folder_doc(st, mp))

    def jfs_trash(self, mp, rest):
        st = self.server.store
        if self.command == "POST":
            if not self._command():
                raise missing_command()
            raise ServiceError(404, E_NO_FILE, "Source file %s/%s does not exist"
                               % (st.abs_path(mp), "/".join(rest)))
        if rest:
            raise ServiceError(404, E_NO_PATH, "Directory %s/%s" % (st.abs_path(mp),
                                                                   "/".join(rest)))
        if self.query.get("mode") == "liststream":
            body = "".join(xmldoc.liststream(st, mp)).encode("utf-8")
            return self.send_xml(200, body)
        return self.send_xml(200, xmldoc.trash_doc(st, mp))

    def jfs_get(self, mp, rest, node):
        st = self.server.store
        mode = self.query.get("mode", "")
        where = st.abs_path(mp) + ("/" + "/".join(rest) if rest else "")
        if node is None:
            if mode == "bin":
                raise ServiceError(404, E_NO_FILE, where)
            raise ServiceError(404, E_NO_PATH, "Directory " + where)
        if mode == "":
            if node["kind"] == "file":
                return self.send_xml(200, xmldoc.file_doc(st, node))
            return self.send_xml(200, xmldoc.folder_doc(st, node))
        if mode == "liststream":
            if node["kind"] == "file" or node["deleted"] is not None:
                raise ServiceError(404, E_NO_PATH, "Directory " + where)
            body = "".join(xmldoc.liststream(st, node)).encode("utf-8")
            return self.send_xml(200, body)
        if mode == "bin":
            return self.jfs_download(node, where)
        if mode in ("enableShare", "disableShare"):
            if node["kind"] == "file":
                node = st.set_share(node, mode == "enableShare")
                return self.send_xml(200, xmldoc.file_doc(st, node))
            return self.send_xml(200, xmldoc.folder_doc(st, node))
        raise ServiceError(400, E_INVALID_ARG, "Unknown mode: " + mode)

    def jfs_download(self, node, where):
        st = self.server.store
        if node["kind"] != "file":
            raise ServiceError(404, E_NO_FILE, where)
        rev = st.rev(node["cur_rev"])
        if "revision" in self.query:
            try:
                number = int(self.query["revision"])
            except ValueError:
                raise ServiceError(400, E_INVALID_ARG, "bad revision number")
            rev = st.q1("SELECT * FROM revisions WHERE node=? AND number=?",
                        (node["id"], number))
            if rev is None or rev["state"] != "COMPLETED":
                raise ServiceError(404, E_NO_FILE, "%s revision %d" % (where, number))
        if rev is None:
            raise ServiceError(404, E_NO_FILE, where + " has no completed revision")
        size = rev["size"]
        try:
            f = open(st.blob_path(rev["md5"]), "rb")
        except FileNotFoundError:
            raise ServiceError(500, "java.io.FileNotFoundException", "content missing")
        with f:
            status, offset, length, headers = 200, 0, size, {"Accept-Ranges": "bytes"}
            rh = self.headers.get("Range")
            if rh:
                rng = parse_range(rh, size)
                if rng == "unsatisfiable":
                    raise ServiceError(416, E_RANGE, "Requested range not satisfiable",
                                       headers={"Content-Range": "bytes */%d" % size})
                if rng is not None:
                    offset, end = rng
                    length = end - offset + 1
                    status = 206
                    headers["Content-Range"] = "bytes %d-%d/%d" % (offset, end, size)
            headers["ETag"] = '"%s"' % rev["md5"]
            headers["Last-Modified"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                     time.gmtime(rev["modified"] or 0))
            self.send_file(status, f, offset, length, rev["mime"] or
                           "application/octet-stream", headers)

    COMMANDS = ("mkDir", "dlDir", "rmDir", "dl", "rm", "mvDir", "mv", "cp", "cphash")

    def _command(self):
        for c in self.COMMANDS:
            if c in self.query:
                v = self.query[c]
                if c in ("mv", "mvDir", "cp"):
                    if v:
                        return c
                elif v.lower() == "true":
                    return c
        return None

    def jfs_command(self, user, mp, rest, node, trailing):
        st = self.server.store
        cmd = self._command()
        if cmd is None:
            raise missing_command()
        self.server.stats.count("commands", cmd)
        self.drain()
        now = int(time.time())
        keep = self.server.knobs["max_revisions"]
        where = st.abs_path(mp) + ("/" + "/".join(rest) if rest else "")
        if cmd == "mkDir":
            folder = st.mkdir(mp, rest, now)
            return self.send_xml(200, xmldoc.folder_doc(st, folder))
        if not rest and cmd in ("dlDir", "rmDir", "dl", "rm", "mvDir", "mv", "cp"):
            raise ServiceError(400, E_INVALID_ARG, "not allowed on a mountpoint: " + where)
        if cmd in ("dl", "rm"):
            if node is None or (cmd == "rm" and node["kind"] != "file"):
                if cmd == "dl":
                    return self.send(200, b"", "application/xml; charset=UTF-8")
                raise ServiceError(404, E_NO_FILE, where)
            if node["kind"] != "file":
                log("dl=true on folder %s: removed for good (service quirk)" % where)
                st.delete(node, True, now)
                return self.send(200, b"", "application/xml; charset=UTF-8")
            res = st.delete(node, cmd == "rm", now)
            return self.send_xml(200, xmldoc.file_doc(st, res)) if res else \
                self.send(200, b"", "application/xml; charset=UTF-8")
        if cmd in ("dlDir", "rmDir"):
            if node is None or node["kind"] != "folder":
                if node is None and cmd == "dlDir":
                    return self.send(200, b"", "application/xml; charset=UTF-8")
                raise ServiceError(404, E_NO_PATH, "Directory " + where)
            res = st.delete(node, cmd == "rmDir", now)
            return self.send_xml(200, xmldoc.folder_doc(st, res)) if res else \
                self.send(200, b"", "application/xml; charset=UTF-8")
        if cmd in ("mv", "cp"):
            if node is None or node["kind"] != "file" or node["deleted"] is not None \
                    or node["cur_rev"] is None:
                raise ServiceError(404, E_NO_FILE, "Source file %s does not exist" % where)
            dst = st.copy_file(node, self.query[cmd], now, cmd == "mv", keep)
            return self.send_xml(200, xmldoc.file_doc(st, dst))
        if cmd == "mvDir":
            if node is None or node["kind"] != "folder" or node["deleted"] is not None \
                    or not trailing:
                raise ServiceError(404, E_NO_PATH, "Source directory %s does not exist" % where)
            dst = st.move_folder(node, self.query["mvDir"], now)
            return self.send_xml(200, xmldoc.folder_doc(st, dst))
        if cmd == "cphash":
            return self.jfs_cphash(mp, rest, node, where, now, keep)
        raise missing_command()

    def jfs_cphash(self, mp, rest, node, where, now, keep):
        st = self.server.store
        h = {k.lower(): v for k, v in self.headers.items()}
        try:
            size = int(h.get("jsize", ""))
        except ValueError:
            raise ServiceError(400, E_INVALID_ARG, "JSize header missing or bad")
        md5 = h.get("jmd5", "").strip()
        if not _MD5.match(md5) or not 0 <= size < 2 ** 63:
            raise ServiceError(400, E_INVALID_ARG, "JMd5 header missing or bad")
        md5 = md5.lower()
        modified = parse_jotta_time(h["jmodified"]) if "jmodified" in h else now
        created = parse_jotta_time(h["jcreated"]) if "jcreated" in h else modified
        if modified is None or created is None:
            raise ServiceError(400, E_INVALID_ARG, "bad JCreated/JModified")
        if node is not None and node["kind"] != "file" and node["deleted"] is None:
            raise ServiceError(400, E_UNIQUE, "A folder exists at " + where)
        res = st.cphash(node, mp, rest, size, md5, created, modified, now, keep)
        if res is None:
            raise ServiceError(404, E_NO_FILE, where)
        return self.send_xml(200, xmldoc.file_doc(st, res))

    # ------------------------------------------------------------ control endpoint

    def control(self, sub):
        """/_emu/...: knobs, stats, seed, login tokens, state inspection."""
        srv = self.server
        st = srv.store
        m = self.command
        try:
            body = self.read_body(64 << 20) if m == "POST" else b""
            arg = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            return self.send_json(400, {"error": "bad JSON: %s" % e})
        try:
            if sub == "/knobs":
                if m == "POST":
                    if not isinstance(arg, dict):
                        raise ValueError("knobs wants a JSON object")
                    return self.send_json(200, srv.knobs.update(arg))
                return self.send_json(200, srv.knobs.snapshot())
            if sub == "/knobs/reset" and m == "POST":
                return self.send_json(200, srv.knobs.reset())
            if sub == "/stats":
                return self.send_json(200, srv.stats.snapshot())
            if sub == "/stats/reset" and m == "POST":
                srv.stats.reset()
                return self.send_json(200, srv.stats.snapshot())
            if sub == "/seed" and m == "POST":
                return self.send_json(200, st.seed(arg))
            if sub == "/login-token" and m == "POST":
                login = arg.get("user", "testuser")
                issuer = arg.get("issuer") or ("http://127.0.0.1:%d"
                                               % srv.server_address[1])
                realm = arg.get("realm", "jottacloud")
                wk = issuer.rstrip("/") + "/auth/realms/%s/.well-known/openid-configuration" \
                    % realm
                tok = make_login_token(st, login, wk, realm)
                return self.send_json(200, {"token": tok,
                                            "username": st.user_by_login(login)["username"]})
            if sub == "/users":
                return self.send_json(200, [{"login": u["login"], "username": u["username"],
                                             "email": u["email"]} for u in st.users()])
            if sub == "/tree":
                q = self.query
                return self.send_json(200, st.tree(q.get("user", "testuser"),
                                                   q.get("device", "Jotta"),
                                                   q.get("mountpoint", "Archive")))
            if sub == "/content":
                return self.control_content()
            if sub == "/expire-tokens" and m == "POST":
                st.expire_access_tokens(arg.get("user"))
                return self.send_json(200, {"ok": True})
            if sub == "/health":
                return self.send_json(200, {"ok": True, "pid": os.getpid()})
            return self.send_json(404, {"error": "unknown control endpoint %s %s" % (m, sub)})
        except (ValueError, KeyError, TypeError) as e:
            return self.send_json(400, {"error": str(e)})
        except ServiceError as e:
            return self.send_json(e.status, {"error": e.exception, "message": e.message})

    def control_content(self):
        st = self.server.store
        q = self.query
        u = st.user_by_login(q.get("user", "testuser"))
        if u is None:
            return self.send_json(404, {"error": "no such user"})
        mp = st.mountpoint(u["username"], q.get("device", "Jotta"),
                           q.get("mountpoint", "Archive"))
        node = st.walk(mp, [p for p in q.get("path", "").split("/") if p])
        if node is None or node["kind"] != "file" or node["cur_rev"] is None:
            return self.send_json(404, {"error": "no such file"})
        rev = st.rev(node["cur_rev"])
        with open(st.blob_path(rev["md5"]), "rb") as f:
            data = f.read()
        return self.send(200, data, "application/octet-stream")


class PipelinedMD5:
    """Feed an md5 object from a helper thread; buffers come back for reuse."""

    def __init__(self, h, nbuf=4, size=CHUNK):
        self.h = h
        self.free = queue.Queue()
        self.work = queue.Queue()
        for _ in range(nbuf):
            self.free.put(bytearray(size))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.work.get()
            if item is None:
                return
            buf, n = item
            with memoryview(buf) as mv:
                self.h.update(mv[:n])
            self.free.put(buf)

    def buffer(self):
        return self.free.get()

    def submit(self, buf, n):
        self.work.put((buf, n))

    def close(self):
        self.work.put(None)
        self.thread.join()


def parse_range(header, size):
    """First range of a 'bytes=' header -> (start, end), None (ignore) or 'unsatisfiable'."""
    m = re.match(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(,.*)?$", header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)
