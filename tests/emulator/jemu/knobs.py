"""Run-time knobs (fault injection, limits) and request statistics."""

import random
import threading
import time

# Request kinds, used for statistics and to aim faults at some requests only.
KINDS = ("oidc", "token", "customer", "user", "device", "folder", "file", "liststream",
         "download", "allocate", "upload", "command", "share", "purge", "trash", "other")

# name: (type, default, help)
KNOBS = {
    "latency_ms": (int, 0, "delay added before every answer, in milliseconds"),
    "latency_kinds": ("kinds", "*", "request kinds the latency applies to"),
    "bandwidth": (int, 0, "cap on body transfer speed in bytes/s, both directions (0 = none)"),
    "bandwidth_kinds": ("kinds", "*", "request kinds the bandwidth cap applies to"),
    "error_rate": (float, 0.0, "probability that a request is answered with error_status"),
    "error_status": (int, 503, "HTTP status used by error_rate (500, 502, 503, 504, 509...)"),
    "error_kinds": ("kinds", "*", "request kinds error_rate applies to"),
    "burst_429": (int, 0, "answer the next N requests with 429 Too Many Requests"),
    "retry_after": (int, 1, "Retry-After seconds sent with the 429 answers"),
    "burst_429_kinds": ("kinds", "*", "request kinds burst_429 applies to"),
    "reset_rate": (float, 0.0, "probability of a connection reset in the middle of a body "
                               "(response body; request body for uploads)"),
    "reset_kinds": ("kinds", "*", "request kinds reset_rate applies to"),
    "truncate_rate": (float, 0.0, "probability that a response body is cut short "
                                  "(clean close before Content-Length bytes)"),
    "truncate_kinds": ("kinds", "*", "request kinds truncate_rate applies to"),
    "outage": (bool, False, "while true every connection is dropped (or answered 503, "
                            "see outage_mode)"),
    "outage_window": ("window", "", "START:DURATION in seconds from now (from server start "
                                    "on the command line): an outage during that window"),
    "outage_mode": (str, "reset", "'reset' (drop connections) or '503' during an outage"),
    "token_lifetime": (int, 3600, "access token lifetime in seconds (expires_in)"),
    "seed": (int, None, "seed of the fault RNG (set again to restart the sequence)"),
    "capacity": (int, -1, "account capacity in bytes; -1 = unlimited; allocate beyond it "
                          "fails with 507"),
    "dedup": (str, "account", "instant upload: 'account' (content known anywhere in the "
                              "account), 'path' (same content at the same path), 'off'"),
    "max_revisions": (int, 5, "completed revisions kept per file"),
    "reject_basic_auth": (bool, False, "refresh grants with HTTP Basic client auth get 401 "
                                       "unauthorized_client (tests the client's retry with "
                                       "client_id in the body)"),
    "error_echo_headers": (bool, False, "fault injection: every error answer (XML, JSON, "
                                        "OAuth, raw) carries the request's headers, "
                                        "Authorization included, in its message, as a "
                                        "careless proxy does (tests log redaction)"),
    "auth_user": (str, "testuser", "login name the authorization endpoint (code grant) "
                                   "logs in, unless login_hint is given"),
    "auth_deny": (bool, False, "the authorization endpoint (code grant) redirects back with "
                               "error=access_denied, as when the user cancels the login"),
}


def parse_kinds(v):
    if v is None or v == "" or v == "*":
        return "*"
    items = v if isinstance(v, (list, tuple)) else str(v).split(",")
    items = [str(i).strip() for i in items if str(i).strip()]
    if "*" in items:
        return "*"
    bad = [i for i in items if i not in KINDS]
    if bad:
        raise ValueError("unknown request kind(s) %s; known: %s" % (bad, ", ".join(KINDS)))
    return ",".join(items)


def parse_window(v, now):
    if v in (None, "", False):
        return "", None
    try:
        if isinstance(v, (list, tuple)):
            start, dur = float(v[0]), float(v[1])
        else:
            a, _, b = str(v).partition(":")
            start, dur = float(a), float(b)
    except (ValueError, IndexError, TypeError):
        raise ValueError("outage_window wants START:DURATION (seconds), not %r" % (v,))
    if dur < 0 or start < 0:
        raise ValueError("outage_window wants START:DURATION with both >= 0")
    return "%g:%g" % (start, dur), (now + start, now + start + dur)


def _coerce(name, v, now):
    typ = KNOBS[name][0]
    if typ == "kinds":
        return parse_kinds(v)
    if typ == "window":
        return parse_window(v, now)
    if v is None:
        if name == "seed":
            return None
        raise ValueError("%s may not be null" % name)
    if typ is bool:
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ValueError("%s wants a boolean" % name)
    if typ is int:
        if isinstance(v, float) and v != int(v):
            raise ValueError("%s wants an integer" % name)
        return int(v)
    if typ is float:
        f = float(v)
        if name.endswith("_rate") and not 0.0 <= f <= 1.0:
            raise ValueError("%s wants a probability between 0 and 1" % name)
        return f
    s = str(v)
    if name == "dedup" and s not in ("account", "path", "off"):
        raise ValueError("dedup wants account, path or off")
    if name == "outage_mode" and s not in ("reset", "503"):
        raise ValueError("outage_mode wants reset or 503")
    return s


class Knobs:
    def __init__(self, initial=None):
        self.lock = threading.Lock()
        self.values = {k: spec[1] for k, spec in KNOBS.items()}
        self.window = None  # absolute (start, end) of outage_window
        self.rng = random.Random()
        if initial:
            self.update(initial)

    def update(self, changes):
        """Apply a dict of knob changes atomically; ValueError on bad input."""
        now = time.time()
        coerced = {}
        for k, v in changes.items():
            if k not in KNOBS:
                raise ValueError("unknown knob %r; known: %s" % (k, ", ".join(sorted(KNOBS))))
            coerced[k] = _coerce(k, v, now)
        with self.lock:
            for k, v in coerced.items():
                if k == "outage_window":
                    self.values[k], self.window = v
                else:
                    self.values[k] = v
                if k == "seed":
                    self.rng.seed(v)
        return self.snapshot()

    def reset(self):
        """All knobs back to their defaults."""
        with self.lock:
            self.values = {k: spec[1] for k, spec in KNOBS.items()}
            self.window = None
        return self.snapshot()

    def snapshot(self):
        with self.lock:
            d = dict(self.values)
            d["outage_active"] = self._outage_now()
            return d

    def __getitem__(self, k):
        with self.lock:
            return self.values[k]

    def _outage_now(self):
        if self.values["outage"]:
            return True
        w = self.window
        return bool(w and w[0] <= time.time() < w[1])

    def outage_now(self):
        with self.lock:
            return self._outage_now()

    def applies(self, knob_kinds, kind):
        kinds = self.values[knob_kinds]
        return kinds == "*" or kind in kinds.split(",")

    def roll(self, rate_knob, kinds_knob, kind):
        """True with probability knobs[rate_knob] when aimed at this kind."""
        with self.lock:
            rate = self.values[rate_knob]
            if rate <= 0 or not self.applies(kinds_knob, kind):
                return False
            return self.rng.random() < rate

    def take_429(self, kind):
        with self.lock:
            if self.values["burst_429"] > 0 and self.applies("burst_429_kinds", kind):
                self.values["burst_429"] -= 1
                return True
            return False

    def fraction(self):
        """Where to cut a body (0.1 .. 0.9), from the fault RNG."""
        with self.lock:
            return 0.1 + 0.8 * self.rng.random()

    def for_kind(self, knob, kinds_knob, kind):
        with self.lock:
            return self.values[knob] if self.applies(kinds_knob, kind) else 0


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = {k: 0 for k in KINDS}
            self.commands = {}
            self.grants = {}
            self.grant_errors = 0
            self.faults = {"latency": 0, "error": 0, "429": 0, "reset": 0, "truncate": 0,
                           "outage": 0}
            self.statuses = {}
            self.bytes_received = 0
            self.bytes_sent = 0
            self.upload_bytes = 0
            self.download_bytes = 0
            self.instant_uploads = 0
            self.since = time.time()

    def count(self, field, key, n=1):
        with self.lock:
            d = getattr(self, field)
            d[key] = d.get(key, 0) + n

    def add(self, field, n):
        with self.lock:
            setattr(self, field, getattr(self, field) + n)

    def snapshot(self):
        with self.lock:
            return {
                "requests": dict(self.requests),
                "commands": dict(self.commands),
                "grants": dict(self.grants),
                "grant_errors": self.grant_errors,
                "faults": dict(self.faults),
                "statuses": dict(self.statuses),
                "bytes_received": self.bytes_received,
                "bytes_sent": self.bytes_sent,
                "upload_bytes": self.upload_bytes,
                "download_bytes": self.download_bytes,
                "instant_uploads": self.instant_uploads,
                "since": self.since,
            }
