"""Small pure helpers: time formats, name keys, XML escaping, ids, errors."""

import calendar
import datetime
import os
import re
import secrets
import time


class ServiceError(Exception):
    """An error the service reports to the client.

    status     HTTP status (also the XML <code>)
    exception  the Java exception name shown in <message> / JSON error_id
    message    detail appended after the exception name (may be '')
    body       optional raw body that replaces the normal XML/JSON one
    """

    def __init__(self, status, exception, message="", body=None, headers=None):
        super().__init__("%d %s %s" % (status, exception, message))
        self.status = status
        self.exception = exception
        self.message = message
        self.body = body
        self.headers = headers or {}


# Java exception names used in error bodies (docs section 9.1).
E_NO_PATH = "no.jotta.backup.errors.NoSuchPathException"
E_NO_FILE = "no.jotta.backup.errors.NoSuchFileException"
E_NO_MOUNTPOINT = "no.jotta.backup.errors.NoSuchMountPointException"
E_NO_DEVICE = "no.jotta.backup.errors.NoSuchDeviceException"
E_INVALID_ARG = "no.jotta.backup.errors.InvalidArgumentException"
E_UNIQUE = "no.jotta.backup.errors.UniqueFileException"
E_ILLEGAL_ARG = "java.lang.IllegalArgumentException"
E_BAD_CREDENTIALS = "org.springframework.security.authentication.BadCredentialsException"
E_USERNAME = "org.springframework.security.core.userdetails.UsernameNotFoundException"
E_RANGE = "no.jotta.backup.errors.RequestedRangeNotSatisfiedException"
E_MISSING_COMMAND = "no.jotta.backup.errors.JFSException"

REASONS = {
    200: "OK", 201: "Created", 206: "Partial Content", 302: "Found",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
    413: "Payload Too Large", 416: "Requested Range Not Satisfiable",
    420: "Incomplete Upload", 429: "Too Many Requests", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 507: "Insufficient Storage",
}


def reason(status):
    return REASONS.get(status, "Error")


# ---------------------------------------------------------------- times

def _fields(ts):
    t = time.gmtime(int(ts))
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec


def jotta_time(ts):
    """Epoch seconds -> JottaTime '2018-07-05-T15:08:02Z' ('' for None)."""
    if ts is None:
        return ""
    return "%04d-%02d-%02d-T%02d:%02d:%02dZ" % _fields(ts)


def rfc3339_ms(ts):
    """Epoch seconds -> '2021-11-30T10:21:05.000Z' (liststream format)."""
    return "%04d-%02d-%02dT%02d:%02d:%02d.000Z" % _fields(ts or 0)


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-]\d{2}:?\d{2})$")
_JOTTA = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})-T(\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(Z|[+-]\d{2}:?\d{2})$")


MIN_TS = -62135596800  # 0001-01-01T00:00:00Z
MAX_TS = 253402300799  # 9999-12-31T23:59:59Z


def _parse(m):
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    try:
        datetime.datetime(y, mo, d, h, mi, min(s, 59))  # validates the fields
    except ValueError:
        return None
    ts = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        ts -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return ts if MIN_TS <= ts <= MAX_TS else None


def parse_rfc3339(value):
    """RFC 3339 string or epoch milliseconds -> epoch seconds (None if bad)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        ts = int(value // 1000)
        return ts if MIN_TS <= ts <= MAX_TS else None
    if not isinstance(value, str):
        return None
    m = _RFC3339.match(value.strip())
    return _parse(m) if m else None


def parse_jotta_time(value):
    """JottaTime (also accepts RFC 3339) -> epoch seconds (None if bad)."""
    value = (value or "").strip()
    m = _JOTTA.match(value)
    if m:
        return _parse(m)
    return parse_rfc3339(value)


# ---------------------------------------------------------------- names

# The one simple lower-case mapping Python's full mapping hides: U+0130
# lower-cases to "i" plus a combining dot, simply to "i".
_SIMPLE_LOWER = {"\u0130": "i"}


def name_key(name):
    """Case-insensitive key: Java's equalsIgnoreCase takes two characters as
    equal when lower(upper(c)) is (Character's simple mappings), so that is
    the key. Python's str.upper/lower are the full mappings; where one gives
    several characters the simple mapping is the character itself, except
    for U+0130."""
    out = []
    for c in name:
        u = c.upper()
        if len(u) != 1:
            u = c
        l = u.lower()
        if len(l) != 1:
            l = _SIMPLE_LOWER.get(u, u)
        out.append(l)
    return "".join(out)


def utf16_len(name):
    return len(name.encode("utf-16-le")) // 2


def has_control(name):
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def check_name(name, path_for_msg):
    """Validate one server name; raises ServiceError like the service."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name or has_control(name):
        raise ServiceError(400, E_ILLEGAL_ARG,
                           "Unable to validate decoded path: " + path_for_msg)
    if utf16_len(name) > 255:
        raise ServiceError(400, E_INVALID_ARG,
                           "JFS file names may not be longer than 255 characters")


# ---------------------------------------------------------------- XML

def xml_text(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def xml_attr(s):
    return (xml_text(s).replace('"', "&quot;").replace("\t", "&#9;")
            .replace("\n", "&#10;").replace("\r", "&#13;"))


# ---------------------------------------------------------------- ids

def hex_id(nbytes=16):
    return secrets.token_hex(nbytes)


def uuid4():
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def x_id():
    return "%012d" % secrets.randbelow(10 ** 12)
