"""Persistent state of the emulator: SQLite for metadata, blob files for content.

Layout of the data directory:
    state.db              SQLite (WAL): users, tokens, nodes, revisions, uploads
    blobs/ab/<md5>        completed content, addressed by MD5
    partial/<upload id>   bytes received so far for an unfinished upload

Tree model: one node per (parent, case-insensitive name).  Kinds: root (one per
user, named by the internal username), device, mountpoint, folder, file.  A
trashed node keeps its place in the tree with `deleted` set (a tombstone);
invariant: every ancestor of a live node is live.  A file's `cur_rev` is its
newest COMPLETED revision, `pending_rev` a newer INCOMPLETE/CORRUPT one.

All state lives in the database (nothing cached in memory), so the CLI
subcommands (login-token, seed) may write while a server runs.  Inside one
process a single connection is shared under `Store.lock`.
"""

import contextlib
import hashlib
import os
import random
import sqlite3
import threading
import time

from .util import (ServiceError, E_NO_MOUNTPOINT, E_NO_DEVICE, E_UNIQUE, E_INVALID_ARG,
                   E_USERNAME, check_name, hex_id, name_key, uuid4)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS users(
    login TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, email TEXT, name TEXT,
    root INTEGER, created INTEGER);
CREATE TABLE IF NOT EXISTS login_secrets(
    secret TEXT PRIMARY KEY, login TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0,
    created INTEGER);
CREATE TABLE IF NOT EXISTS families(
    id TEXT PRIMARY KEY, login TEXT NOT NULL, client_id TEXT NOT NULL,
    alive INTEGER NOT NULL DEFAULT 1, scope TEXT, created INTEGER);
CREATE TABLE IF NOT EXISTS refresh_tokens(
    token TEXT PRIMARY KEY, family TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0,
    created INTEGER);
CREATE TABLE IF NOT EXISTS access_tokens(
    token TEXT PRIMARY KEY, family TEXT NOT NULL, login TEXT NOT NULL,
    expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS codes(
    code TEXT PRIMARY KEY, login TEXT NOT NULL, client_id TEXT, redirect_uri TEXT,
    scope TEXT, used INTEGER NOT NULL DEFAULT 0, expires REAL);
CREATE TABLE IF NOT EXISTS nodes(
    id INTEGER PRIMARY KEY, parent INTEGER, user TEXT NOT NULL, kind TEXT NOT NULL,
    name TEXT NOT NULL, key TEXT NOT NULL, uuid TEXT NOT NULL,
    deleted INTEGER, created INTEGER, modified INTEGER, dtype TEXT,
    cur_rev INTEGER, pending_rev INTEGER, next_rev INTEGER NOT NULL DEFAULT 1,
    public_uri TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_by_key ON nodes(parent, key);
CREATE INDEX IF NOT EXISTS nodes_by_user ON nodes(user, kind);
CREATE TABLE IF NOT EXISTS revisions(
    id INTEGER PRIMARY KEY, node INTEGER NOT NULL, number INTEGER NOT NULL,
    state TEXT NOT NULL, size INTEGER, md5 TEXT, created INTEGER, modified INTEGER,
    updated INTEGER, mime TEXT);
CREATE INDEX IF NOT EXISTS revisions_by_node ON revisions(node);
CREATE INDEX IF NOT EXISTS revisions_by_md5 ON revisions(md5, size);
CREATE TABLE IF NOT EXISTS uploads(
    id TEXT PRIMARY KEY, login TEXT NOT NULL, node INTEGER NOT NULL, rev INTEGER NOT NULL,
    path TEXT, md5 TEXT NOT NULL, size INTEGER NOT NULL, received INTEGER NOT NULL DEFAULT 0,
    created INTEGER);
CREATE INDEX IF NOT EXISTS uploads_by_node ON uploads(node);
"""

JOTTA_MOUNTPOINTS = ("Archive", "Sync", "Trash", "Shared", "Latest", "Links")



def guess_mime(name):
    import mimetypes
    t, _ = mimetypes.guess_type(name, strict=False)
    return t or "application/octet-stream"


class Store:
    def __init__(self, data_dir):
        self.dir = os.path.abspath(data_dir)
        self.blob_dir = os.path.join(self.dir, "blobs")
        self.partial_dir = os.path.join(self.dir, "partial")
        os.makedirs(self.blob_dir, exist_ok=True)
        os.makedirs(self.partial_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(os.path.join(self.dir, "state.db"), timeout=30,
                                  isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        with self.lock:
            self.db.executescript(SCHEMA)

    def close(self):
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def tx(self):
        """One write transaction under the process lock."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def q(self, sql, args=()):
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def q1(self, sql, args=()):
        with self.lock:
            return self.db.execute(sql, args).fetchone()

    def x(self, sql, args=()):
        with self.lock:
            return self.db.execute(sql, args)

    def meta_get(self, k, default=None):
        r = self.q1("SELECT v FROM meta WHERE k=?", (k,))
        return r["v"] if r else default

    def meta_set(self, k, v):
        self.x("INSERT OR REPLACE INTO meta(k, v) VALUES(?, ?)", (k, str(v)))

    # ------------------------------------------------------------ users

    @staticmethod
    def internal_username(login):
        # 24 lower-case alphanumerics, stable per login name, never the login name.
        return hashlib.sha256(("jottaemu:" + login).encode()).hexdigest()[:24]

    def ensure_user(self, login):
        with self.tx():
            row = self.q1("SELECT * FROM users WHERE login=?", (login,))
            if row:
                return row
            username = self.internal_username(login)
            now = int(time.time())
            root = self._insert_node(None, username, "root", username, now)
            dev = self._insert_node(root, username, "device", "Jotta", now, dtype="JOTTA")
            for mp in JOTTA_MOUNTPOINTS:
                self._insert_node(dev, username, "mountpoint", mp, now)
            email = login if "@" in login else login + "@example.com"
            self.x("INSERT INTO users(login, username, email, name, root, created) "
                   "VALUES(?,?,?,?,?,?)", (login, username, email,
                                           "Emulated " + login, root, now))
            return self.q1("SELECT * FROM users WHERE login=?", (login,))

    def user_by_login(self, login):
        return self.q1("SELECT * FROM users WHERE login=?", (login,))

    def user_by_username(self, username):
        return self.q1("SELECT * FROM users WHERE username=?", (username,))

    def users(self):
        return self.q("SELECT * FROM users ORDER BY login")

    # ------------------------------------------------------------ login tokens / OAuth

    def new_login_secret(self, login):
        self.ensure_user(login)
        secret = uuid4()
        self.x("INSERT INTO login_secrets(secret, login, created) VALUES(?,?,?)",
               (secret, login, int(time.time())))
        return secret

    def consume_login_secret(self, login, secret):
        """True once for a valid (login, secret) pair; False for reuse or unknown."""
        with self.tx():
            row = self.q1("SELECT * FROM login_secrets WHERE secret=?", (secret,))
            if not row or row["login"] != login or row["used"]:
                return False
            self.x("UPDATE login_secrets SET used=1 WHERE secret=?", (secret,))
            return True

    def new_family(self, login, client_id, scope):
        fid = uuid4()
        self.x("INSERT INTO families(id, login, client_id, scope, created) VALUES(?,?,?,?,?)",
               (fid, login, client_id, scope, int(time.time())))
        return fid

    def issue_tokens(self, fid, login, access, refresh, lifetime):
        with self.tx():
            self.x("INSERT INTO refresh_tokens(token, family, created) VALUES(?,?,?)",
                   (refresh, fid, int(time.time())))
            self.x("INSERT INTO access_tokens(token, family, login, expires) VALUES(?,?,?,?)",
                   (access, fid, login, time.time() + lifetime))
            # Old access tokens of the family expire on their own; prune dead rows.
            self.x("DELETE FROM access_tokens WHERE expires < ?", (time.time() - 3600,))

    def use_refresh_token(self, token, client_id):
        """Rotate: returns the family row, or raises ValueError(description).

        Reuse of a spent token kills the whole family (committed before raising)."""
        fam, problem = None, None
        with self.tx():
            rt = self.q1("SELECT * FROM refresh_tokens WHERE token=?", (token,))
            fam = rt and self.q1("SELECT * FROM families WHERE id=?", (rt["family"],))
            if not rt:
                problem = "Invalid refresh token"
            elif not fam or not fam["alive"]:
                problem = "Session doesn't have required client"
            elif rt["used"]:
                # Reuse detected (Keycloak refresh token rotation).
                self._kill_family(fam["id"])
                problem = "Session doesn't have required client"
            elif fam["client_id"] != client_id:
                problem = "Invalid refresh token. Token client and authorized client don't match"
            else:
                self.x("UPDATE refresh_tokens SET used=1 WHERE token=?", (token,))
        if problem:
            raise ValueError(problem)
        return fam

    def _kill_family(self, fid):
        self.x("UPDATE families SET alive=0 WHERE id=?", (fid,))
        self.x("DELETE FROM access_tokens WHERE family=?", (fid,))

    def kill_family_of(self, refresh_token):
        with self.tx():
            rt = self.q1("SELECT family FROM refresh_tokens WHERE token=?", (refresh_token,))
            if rt:
                self._kill_family(rt["family"])
            return bool(rt)

    def check_access(self, token):
        """Login name for a valid, unexpired access token, else None."""
        row = self.q1("SELECT a.login, a.expires FROM access_tokens a JOIN families f "
                      "ON f.id=a.family WHERE a.token=? AND f.alive=1", (token,))
        if not row or row["expires"] < time.time():
            return None
        return row["login"]

    def expire_access_tokens(self, login=None):
        if login:
            self.x("UPDATE access_tokens SET expires=0 WHERE login=?", (login,))
        else:
            self.x("UPDATE access_tokens SET expires=0")

    def new_code(self, login, client_id, redirect_uri, scope):
        code = hex_id(20)
        self.x("INSERT INTO codes(code, login, client_id, redirect_uri, scope, expires) "
               "VALUES(?,?,?,?,?,?)", (code, login, client_id, redirect_uri, scope,
                                       time.time() + 300))
        return code

    def use_code(self, code, client_id, redirect_uri):
        with self.tx():
            row = self.q1("SELECT * FROM codes WHERE code=?", (code,))
            if (not row or row["used"] or row["expires"] < time.time()
                    or row["client_id"] != client_id
                    or (row["redirect_uri"] or "") != (redirect_uri or "")):
                if row:
                    self.x("UPDATE codes SET used=1 WHERE code=?", (code,))
                return None
            self.x("UPDATE codes SET used=1 WHERE code=?", (code,))
            return row

    # ------------------------------------------------------------ nodes: basics

    def _insert_node(self, parent, user, kind, name, now, dtype=None):
        cur = self.db.execute(
            "INSERT INTO nodes(parent, user, kind, name, key, uuid, created, modified, dtype) "
            "VALUES(?,?,?,?,?,?,?,?,?)",
            (parent, user, kind, name, name_key(name), uuid4(), now, now, dtype))
        return cur.lastrowid

    def node(self, nid):
        return self.q1("SELECT * FROM nodes WHERE id=?", (nid,))

    def child(self, parent_id, name):
        return self.q1("SELECT * FROM nodes WHERE parent=? AND key=?",
                       (parent_id, name_key(name)))

    def children(self, parent_id):
        return self.q("SELECT * FROM nodes WHERE parent=? ORDER BY key", (parent_id,))

    def rev(self, rid):
        if rid is None:
            return None
        return self.q1("SELECT * FROM revisions WHERE id=?", (rid,))

    def revs_by_id(self, ids):
        ids = [i for i in ids if i is not None]
        if not ids:
            return {}
        out = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for r in self.q("SELECT * FROM revisions WHERE id IN (%s)"
                            % ",".join("?" * len(chunk)), chunk):
                out[r["id"]] = r
        return out

    def revisions(self, nid):
        return self.q("SELECT * FROM revisions WHERE node=? ORDER BY number DESC", (nid,))

    def ancestors(self, node):
        """[root, device, mountpoint, ..., node]"""
        chain = [node]
        while chain[-1]["parent"] is not None:
            chain.append(self.node(chain[-1]["parent"]))
        chain.reverse()
        return chain

    def abs_path(self, node):
        """'/<user>/<device>/<mountpoint>/...' of a node."""
        return "/" + "/".join(n["name"] for n in self.ancestors(node))

    def subtree_ids(self, nid):
        rows = self.q("WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL "
                      "SELECT n.id FROM nodes n JOIN sub ON n.parent=sub.id) "
                      "SELECT id FROM sub", (nid,))
        return [r["id"] for r in rows]

    def subtree_size(self, nid):
        r = self.q1("WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL "
                    "SELECT n.id FROM nodes n JOIN sub ON n.parent=sub.id) "
                    "SELECT COALESCE(SUM(r.size),0) AS s FROM sub JOIN nodes n ON n.id=sub.id "
                    "JOIN revisions r ON r.id=n.cur_rev", (nid,))
        return r["s"]

    def usage(self, username):
        r = self.q1("SELECT COALESCE(SUM(r.size),0) AS s FROM nodes n JOIN revisions r "
                    "ON r.id=n.cur_rev WHERE n.user=? AND n.kind='file'", (username,))
        return r["s"]

    # ------------------------------------------------------------ path resolution

    def account(self, username):
        u = self.user_by_username(username)
        if not u:
            raise ServiceError(400, E_USERNAME, "Username not found in url!")
        return u

    def device(self, username, device):
        u = self.account(username)
        dev = self.child(u["root"], device)
        if not dev:
            raise ServiceError(404, E_NO_DEVICE, "")
        return dev

    def mountpoint(self, username, device, mp):
        dev = self.device(username, device)
        m = self.child(dev["id"], mp)
        if not m:
            raise ServiceError(404, E_NO_MOUNTPOINT, "")
        return m

    def walk(self, start, names):
        """The node at names below node `start`, or None."""
        node = start
        for name in names:
            node = self.child(node["id"], name)
            if node is None:
                return None
        return node

    def is_trash(self, mp):
        """The built-in device's Trash mountpoint: a read-only view (docs 8.7)."""
        if mp["kind"] != "mountpoint" or mp["name"] != "Trash":
            return False
        dev = self.node(mp["parent"])
        return dev is not None and dev["dtype"] == "JOTTA"

    # ------------------------------------------------------------ tree mutation helpers

    def _revive(self, node):
        """Clear `deleted` on node and its ancestors (not on its descendants)."""
        n = node
        while n is not None and n["kind"] in ("folder", "file"):
            if n["deleted"] is not None:
                self.x("UPDATE nodes SET deleted=NULL WHERE id=?", (n["id"],))
            n = self.node(n["parent"])

    def _trash(self, node, now):
        ids = self.subtree_ids(node["id"])
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            self.x("UPDATE nodes SET deleted=? WHERE deleted IS NULL AND id IN (%s)"
                   % ",".join("?" * len(chunk)), [now] + chunk)

    def _purge(self, node):
        """Remove a subtree for good, with revisions, uploads and orphan blobs."""
        ids = self.subtree_ids(node["id"])
        md5s = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.q("SELECT DISTINCT md5 FROM revisions WHERE node IN (%s) "
                            "AND state='COMPLETED'" % marks, chunk):
                md5s.add(r["md5"])
            for u in self.q("SELECT id FROM uploads WHERE node IN (%s)" % marks, chunk):
                self._drop_partial(u["id"])
            self.x("DELETE FROM uploads WHERE node IN (%s)" % marks, chunk)
            self.x("DELETE FROM revisions WHERE node IN (%s)" % marks, chunk)
            self.x("DELETE FROM nodes WHERE id IN (%s)" % marks, chunk)
        for m in md5s:
            self._gc_blob(m)

    def _gc_blob(self, md5):
        if md5 and not self.q1("SELECT 1 FROM revisions WHERE md5=? AND state='COMPLETED' "
                               "LIMIT 1", (md5,)):
            try:
                os.unlink(self.blob_path(md5))
            except FileNotFoundError:
                pass

    def _drop_partial(self, upload_id):
        try:
            os.unlink(self.partial_path(upload_id))
        except FileNotFoundError:
            pass

    def _mkdirs(self, start, names, now, for_path):
        """mkdir -p below `start`; revives tombstones; returns the last folder."""
        node = start
        for name in names:
            nxt = self._slot(node, name, "folder", now, for_path)
            if nxt["deleted"] is not None:
                self.x("UPDATE nodes SET deleted=NULL WHERE id=?", (nxt["id"],))
                nxt = self.node(nxt["id"])
            node = nxt
        if node["kind"] in ("folder", "file"):
            self._revive(node)
        return self.node(node["id"])

    def _slot(self, parent, name, kind, now, for_path):
        """The node at parent/name for a `kind` ("file" or "folder"): the
        existing one (live or trashed) when it can be one, else a new one. A
        live node of the other kind (for a file: anything not a file) is an
        error; a trashed one gives way."""
        check_name(name, for_path)
        node = self.child(parent["id"], name)
        other = node is not None and ((node["kind"] == "file") if kind == "folder"
                                      else (node["kind"] != "file"))
        if other:
            if node["deleted"] is None:
                raise ServiceError(400, E_UNIQUE, "A %s already exists at "
                                   % ("file" if kind == "folder" else "folder")
                                   + self.abs_path(node))
            self._purge(node)
            node = None
        if node is None:
            nid = self._insert_node(parent["id"], parent["user"], kind, name, now)
            node = self.node(nid)
        return node

    def _file_slot(self, parent, name, now, for_path):
        """Existing file node at parent/name (live or trashed), or a new one."""
        return self._slot(parent, name, "file", now, for_path)

    def _add_revision(self, node, state, size, md5, created, modified, now):
        # The counter is read from the table, not from `node`: a caller adding
        # several revisions in a row holds a row read before the first one.
        number = self.q1("SELECT next_rev FROM nodes WHERE id=?", (node["id"],))["next_rev"]
        cur = self.x("INSERT INTO revisions(node, number, state, size, md5, created, modified, "
                     "updated, mime) VALUES(?,?,?,?,?,?,?,?,?)",
                     (node["id"], number, state, size, md5, created, modified, now,
                      guess_mime(node["name"])))
        self.x("UPDATE nodes SET next_rev=? WHERE id=?", (number + 1, node["id"]))
        return cur.lastrowid

    def _refresh_pointers(self, nid, keep):
        """Recompute cur_rev/pending_rev; prune old revisions beyond `keep`."""
        revs = self.q("SELECT * FROM revisions WHERE node=? ORDER BY number DESC", (nid,))
        completed = [r for r in revs if r["state"] == "COMPLETED"]
        cur = completed[0] if completed else None
        pending = None
        for r in revs:
            if r["state"] != "COMPLETED" and (cur is None or r["number"] > cur["number"]):
                pending = r
                break
        drop = completed[max(keep, 1):]
        if cur is not None:
            # Corrupt revisions older than the current one are of no further use.
            drop += [r for r in revs if r["state"] == "CORRUPT" and r["number"] < cur["number"]]
        for r in drop:
            self.x("DELETE FROM revisions WHERE id=?", (r["id"],))
        self.x("UPDATE nodes SET cur_rev=?, pending_rev=? WHERE id=?",
               (cur["id"] if cur else None, pending["id"] if pending else None, nid))
        for r in drop:
            if r["state"] == "COMPLETED":
                self._gc_blob(r["md5"])

    def account_has_content(self, username, md5, size):
        r = self.q1("SELECT 1 FROM revisions r JOIN nodes n ON n.id=r.node WHERE n.user=? "
                    "AND r.md5=? AND r.size=? AND r.state='COMPLETED' LIMIT 1",
                    (username, md5, size))
        return bool(r) and os.path.exists(self.blob_path(md5))

    # ------------------------------------------------------------ blobs

    def blob_path(self, md5):
        return os.path.join(self.blob_dir, md5[:2], md5)

    def partial_path(self, upload_id):
        return os.path.join(self.partial_dir, upload_id)

    def put_blob_file(self, src_path, md5):
        """Move a fully written file into the blob store (or drop it if known)."""
        dst = self.blob_path(md5)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.exists(dst):
            os.unlink(src_path)
        else:
            os.replace(src_path, dst)

    def write_blob(self, chunks):
        """Store content from an iterable of bytes; returns (md5, size)."""
        tmp = os.path.join(self.partial_dir, "seed-" + hex_id(8))
        h = hashlib.md5()
        size = 0
        with open(tmp, "wb") as f:
            for c in chunks:
                h.update(c)
                f.write(c)
                size += len(c)
        md5 = h.hexdigest()
        with self.lock:
            self.put_blob_file(tmp, md5)
        return md5, size

    # ------------------------------------------------------------ JFS operations

    def mkdir(self, mp, names, now):
        with self.tx():
            return self._mkdirs(mp, names, now, self.abs_path(mp) + "/" + "/".join(names))

    def delete(self, node, hard, now):
        """dl=true / dlDir=true (trash) or rm=true / rmDir=true (for good)."""
        with self.tx():
            node = self.node(node["id"])
            if node is None:
                return None
            if hard:
                self._purge(node)
                return None
            if node["deleted"] is None:
                self._trash(node, now)
            return self.node(node["id"])

    def purge_trash(self, username):
        with self.tx():
            top = self.q("SELECT n.* FROM nodes n JOIN nodes p ON p.id=n.parent WHERE "
                         "n.user=? AND n.deleted IS NOT NULL AND p.deleted IS NULL", (username,))
            counts = {"folders": 0, "files": 0}
            for n in top:
                counts["folders" if n["kind"] == "folder" else "files"] += 1
                self._purge(n)
            return counts

    def trash_items(self, username):
        """Top-level trashed items of an account (the Trash view)."""
        return self.q("SELECT n.* FROM nodes n JOIN nodes p ON p.id=n.parent WHERE "
                      "n.user=? AND n.deleted IS NOT NULL AND p.deleted IS NULL "
                      "ORDER BY n.deleted DESC, n.key", (username,))

    def _dest(self, username, dest):
        """Parse a command destination '/<user>/<device>/<mountpoint>/<path...>'."""
        parts = [p for p in dest.split("/") if p != ""]
        if len(parts) < 4:
            raise ServiceError(400, E_INVALID_ARG, "Invalid destination path: " + dest)
        if parts[0] != username:
            raise ServiceError(400, E_USERNAME, "Username not found in url!")
        mp = self.mountpoint(parts[0], parts[1], parts[2])
        if self.is_trash(mp):
            raise ServiceError(400, E_INVALID_ARG, "Destination is read-only: " + dest)
        return mp, parts[3:]

    def copy_file(self, src, dest, now, move, keep):
        """cp= / mv= of a file.  Returns the destination node.

        Onto an existing live file: the destination gets a new revision with the
        source's content (overwrite).  Onto a trashed file: cp leaves the result
        in the trash (the service quirk of docs 8.5); mv brings it back."""
        with self.tx():
            src = self.node(src["id"])
            mp, names = self._dest(src["user"], dest)
            parent = self._mkdirs(mp, names[:-1], now, dest)
            check_name(names[-1], dest)
            existing = self.child(parent["id"], names[-1])
            if existing is not None and existing["id"] == src["id"]:
                # Same node: a case-only rename (or a no-op).
                if move:
                    self.x("UPDATE nodes SET name=? WHERE id=?", (names[-1], src["id"]))
                return self.node(src["id"])
            if existing is not None and existing["kind"] != "file" \
                    and existing["deleted"] is None:
                raise ServiceError(400, E_UNIQUE, "A folder already exists at " + dest)
            cur = self.rev(src["cur_rev"])
            if move and existing is None:
                self.x("UPDATE nodes SET parent=?, name=?, key=? WHERE id=?",
                       (parent["id"], names[-1], name_key(names[-1]), src["id"]))
                return self.node(src["id"])
            dst = self._file_slot(parent, names[-1], now, dest)
            was_trashed = dst["deleted"] is not None and existing is not None
            self._add_revision(dst, "COMPLETED", cur["size"], cur["md5"], cur["created"],
                               cur["modified"], now)
            self._refresh_pointers(dst["id"], keep)
            if move:
                self._revive(self.node(dst["id"]))
                self._purge(self.node(src["id"]))
            elif not was_trashed:
                self._revive(self.node(dst["id"]))
            return self.node(dst["id"])

    def move_folder(self, src, dest, now):
        with self.tx():
            src = self.node(src["id"])
            mp, names = self._dest(src["user"], dest)
            parent = self._mkdirs(mp, names[:-1], now, dest)
            if parent["id"] in self.subtree_ids(src["id"]):
                raise ServiceError(400, E_INVALID_ARG,
                                   "Cannot move a folder into itself: " + dest)
            check_name(names[-1], dest)
            existing = self.child(parent["id"], names[-1])
            if existing is not None and existing["id"] != src["id"]:
                if existing["deleted"] is None:
                    raise ServiceError(400, E_UNIQUE, "Destination already exists: " + dest)
                self._purge(existing)  # a tombstone gives way
            self.x("UPDATE nodes SET parent=?, name=?, key=? WHERE id=?",
                   (parent["id"], names[-1], name_key(names[-1]), src["id"]))
            return self.node(src["id"])

    def cphash(self, node_slot, mp, names, size, md5, created, modified, now, keep):
        """Make mp/names hold content (size, md5) with the given times.

        Returns the file node, or None when the content is unknown (an upload
        would be needed)."""
        with self.tx():
            path = self.abs_path(mp) + "/" + "/".join(names)
            node = node_slot and self.node(node_slot["id"])
            if node is not None and node["kind"] == "file":
                cur = self.rev(node["cur_rev"])
                if cur is not None and cur["md5"] == md5 and cur["size"] == size:
                    self.x("UPDATE revisions SET created=?, modified=? WHERE id=?",
                           (created, modified, cur["id"]))
                    self._revive(node)
                    return self.node(node["id"])
            if not self.account_has_content(mp["user"], md5, size):
                return None
            parent = self._mkdirs(mp, names[:-1], now, path)
            node = self._file_slot(parent, names[-1], now, path)
            self._add_revision(node, "COMPLETED", size, md5, created, modified, now)
            self._refresh_pointers(node["id"], keep)
            self._revive(self.node(node["id"]))
            return self.node(node["id"])

    def set_share(self, node, on):
        uri = hex_id(16) if on else None
        if on and node["public_uri"]:
            uri = node["public_uri"]
        self.x("UPDATE nodes SET public_uri=? WHERE id=?", (uri, node["id"]))
        return self.node(node["id"])

    def create_device(self, username, name, dtype, now):
        with self.tx():
            u = self.account(username)
            check_name(name, "/" + username + "/" + name)
            if self.child(u["root"], name):
                raise ServiceError(400, E_UNIQUE, "Device already exists: " + name)
            nid = self._insert_node(u["root"], username, "device", name, now, dtype=dtype)
            return self.node(nid)

    def create_mountpoint(self, dev, name, now):
        with self.tx():
            check_name(name, "/" + dev["user"] + "/" + dev["name"] + "/" + name)
            if dev["dtype"] == "JOTTA":
                raise ServiceError(400, E_INVALID_ARG,
                                   "Cannot create mountpoints on the built-in device")
            nid = self._insert_node(dev["id"], dev["user"], "mountpoint", name, now)
            return self.node(nid)

    # ------------------------------------------------------------ allocate / upload

    def allocate(self, login, mp, names, size, md5, created, modified, now, dedup, keep,
                 path_str):
        """Returns dict(state, upload_id, resume_pos, node)."""
        with self.tx():
            full = self.abs_path(mp) + "/" + "/".join(names)
            parent = self._mkdirs(mp, names[:-1], now, full)
            node = self._file_slot(parent, names[-1], now, full)
            cur = self.rev(node["cur_rev"])
            if dedup != "off" and cur is not None and cur["md5"] == md5 \
                    and cur["size"] == size:
                self.x("UPDATE revisions SET created=?, modified=? WHERE id=?",
                       (created, modified, cur["id"]))
                self._revive(node)
                return {"state": "COMPLETED", "upload_id": "", "resume_pos": size,
                        "node": node["id"]}
            if dedup == "account" and self.account_has_content(mp["user"], md5, size):
                self._add_revision(node, "COMPLETED", size, md5, created, modified, now)
                self._refresh_pointers(node["id"], keep)
                self._revive(self.node(node["id"]))
                return {"state": "COMPLETED", "upload_id": "", "resume_pos": size,
                        "node": node["id"]}
            up = self.q1("SELECT * FROM uploads WHERE node=? AND md5=? AND size=? "
                         "ORDER BY created DESC LIMIT 1", (node["id"], md5, size))
            if up is not None:
                self.x("UPDATE revisions SET created=?, modified=?, updated=? WHERE id=?",
                       (created, modified, now, up["rev"]))
                try:
                    have = os.path.getsize(self.partial_path(up["id"]))
                except OSError:
                    have = 0
                received = min(up["received"], have)  # bytes lost in a crash are gone
                return {"state": "INCOMPLETE", "upload_id": up["id"],
                        "resume_pos": received, "node": node["id"]}
            rid = self._add_revision(node, "INCOMPLETE", 0, md5, created, modified, now)
            uid = hex_id(16)
            self.x("INSERT INTO uploads(id, login, node, rev, path, md5, size, received, created)"
                   " VALUES(?,?,?,?,?,?,?,0,?)", (uid, login, node["id"], rid, path_str,
                                                  md5, size, now))
            self._refresh_pointers(node["id"], keep)
            return {"state": "INCOMPLETE", "upload_id": uid, "resume_pos": 0,
                    "node": node["id"]}

    def upload(self, uid):
        return self.q1("SELECT * FROM uploads WHERE id=?", (uid,))

    def upload_progress(self, uid, received):
        with self.tx():
            up = self.upload(uid)
            if up is None:
                return
            self.x("UPDATE uploads SET received=? WHERE id=?", (received, uid))
            self.x("UPDATE revisions SET size=? WHERE id=?", (received, up["rev"]))

    def finish_upload(self, uid, md5_ok, now, keep):
        """Called with the whole content received.  Returns (node, revision) or None."""
        with self.tx():
            up = self.upload(uid)
            if up is None:
                return None
            path = self.partial_path(uid)
            self.x("DELETE FROM uploads WHERE id=?", (uid,))
            node = self.node(up["node"])
            if not md5_ok:
                self._drop_partial(uid)
                self.x("UPDATE revisions SET state='CORRUPT', updated=? WHERE id=?",
                       (now, up["rev"]))
                self._refresh_pointers(node["id"], keep)
                return node, self.rev(up["rev"])
            self.put_blob_file(path, up["md5"])
            # The last upload to finish becomes the current revision.
            top = self.q1("SELECT MAX(number) AS m FROM revisions WHERE node=? "
                          "AND state='COMPLETED'", (node["id"],))["m"]
            r = self.rev(up["rev"])
            number = r["number"]
            if top is not None and top > number:
                number = node["next_rev"]
                self.x("UPDATE nodes SET next_rev=? WHERE id=?", (number + 1, node["id"]))
            self.x("UPDATE revisions SET state='COMPLETED', size=?, number=?, updated=? "
                   "WHERE id=?", (up["size"], number, now, up["rev"]))
            self._refresh_pointers(node["id"], keep)
            self._revive(self.node(node["id"]))
            return self.node(node["id"]), self.rev(up["rev"])

    # ------------------------------------------------------------ seeding and inspection

    def seed(self, spec):
        """Create folders/files with arbitrary raw server names.  See jottaemu --help."""
        login = spec.get("user", "testuser")
        u = self.ensure_user(login)
        username = u["username"]
        dev_name = spec.get("device", "Jotta")
        mp_name = spec.get("mountpoint", "Archive")
        now = int(time.time())
        with self.tx():
            dev = self.child(u["root"], dev_name)
            if dev is None:
                dev = self.node(self._insert_node(u["root"], username, "device", dev_name,
                                                  now, dtype="WORKSTATION"))
            mp = self.child(dev["id"], mp_name)
            if mp is None:
                mp = self.node(self._insert_node(dev["id"], username, "mountpoint", mp_name,
                                                 now))
        rng = random.Random(spec.get("seed", 0))
        created = []
        for e in spec.get("entries", []):
            names = e["path"] if isinstance(e["path"], list) else \
                [p for p in e["path"].split("/") if p != ""]
            if not names:
                raise ServiceError(400, E_INVALID_ARG, "seed entry without a path")
            versions = e.get("revisions") or ([e] if not e.get("folder") else [])
            blobs = [self._seed_content(v, rng) for v in versions]
            with self.tx():
                path = self.abs_path(mp) + "/" + "/".join(names)
                if e.get("folder"):
                    node = self._mkdirs(mp, names, now, path)
                else:
                    parent = self._mkdirs(mp, names[:-1], now, path)
                    node = self._file_slot(parent, names[-1], now, path)
                    for v, (md5, size) in zip(versions, blobs):
                        t_mod = _seed_time(v.get("modified", e.get("modified")), now)
                        t_cre = _seed_time(v.get("created", e.get("created")), t_mod)
                        state = v.get("state", "COMPLETED")
                        self._add_revision(node, state, size if state == "COMPLETED"
                                           else v.get("received", 0), md5, t_cre, t_mod, now)
                    self._refresh_pointers(node["id"], e.get("keep", 1000))
                    if e.get("share"):
                        self.set_share(self.node(node["id"]), True)
                if e.get("deleted"):
                    t = _seed_time(e["deleted"], now) if e["deleted"] is not True else now
                    self._trash(self.node(node["id"]), t)
                created.append(self.abs_path(self.node(node["id"])))
        return {"username": username, "created": created}

    def _seed_content(self, v, rng):
        if "content_b64" in v:
            import base64
            return self.write_blob([base64.b64decode(v["content_b64"])])
        if "content" in v:
            return self.write_blob([v["content"].encode("utf-8")])
        size = int(v.get("size", 0))
        fill = v.get("fill", "random")

        def gen():
            left = size
            while left > 0:
                n = min(left, 1 << 20)
                if fill == "zero":
                    yield bytes(n)
                else:
                    yield rng.randbytes(n)
                left -= n
        return self.write_blob(gen())

    def tree(self, login, device="Jotta", mountpoint="Archive"):
        """Every node below a mountpoint, for tests: list of dicts, pre-order."""
        u = self.user_by_login(login)
        if u is None:
            raise ServiceError(404, E_USERNAME, "no such user: " + login)
        mp = self.mountpoint(u["username"], device, mountpoint)
        out = []

        def rec(node, prefix):
            for c in self.children(node["id"]):
                p = prefix + c["name"]
                d = {"path": p, "type": c["kind"], "name": c["name"],
                     "deleted": c["deleted"], "uuid": c["uuid"]}
                if c["kind"] == "file":
                    cur = self.rev(c["cur_rev"])
                    pend = self.rev(c["pending_rev"])
                    d.update({"size": cur["size"] if cur else None,
                              "md5": cur["md5"] if cur else None,
                              "created": cur["created"] if cur else None,
                              "modified": cur["modified"] if cur else None,
                              "updated": cur["updated"] if cur else None,
                              "revision": cur["number"] if cur else None,
                              "revisions": len(self.revisions(c["id"])),
                              "latest_state": pend["state"] if pend else None,
                              "public_uri": c["public_uri"]})
                out.append(d)
                if c["kind"] == "folder":
                    rec(c, p + "/")
        rec(mp, "")
        return out


def _seed_time(v, default):
    if v is None:
        return default
    if isinstance(v, (int, float)):
        return int(v)
    from .util import parse_jotta_time
    t = parse_jotta_time(v)
    if t is None:
        raise ServiceError(400, E_INVALID_ARG, "bad time in seed: %r" % (v,))
    return t

