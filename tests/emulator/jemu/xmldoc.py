"""XML documents of the JFS API (docs sections 3, 5, 8, 9.1)."""

import time

from .util import jotta_time, rfc3339_ms, xml_attr, xml_text, x_id, reason

HOST = "emu-01"
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _stamp():
    return ' time="%s" host="%s"' % (jotta_time(time.time()), HOST)


def _pre(tag, text):
    return '<%s xml:space="preserve">%s</%s>' % (tag, xml_text(text), tag)


def _el(tag, value):
    return "<%s>%s</%s>" % (tag, xml_text(str(value)), tag)


def error_xml(status, exception, message=""):
    msg = exception + (": " + message if message else "")
    return (DECL + "<error>" + _el("code", status) + _el("message", msg)
            + _el("reason", reason(status)) + "<cause></cause>" + _el("hostname", HOST)
            + _el("x-id", x_id()) + "</error>").encode("utf-8")


def revision_xml(tag, r, listing):
    parts = ["<%s>" % tag, _el("number", r["number"]), _el("state", r["state"]),
             _el("created", jotta_time(r["created"])), _el("modified", jotta_time(r["modified"])),
             _el("mime", r["mime"] or "application/octet-stream")]
    # INCOMPLETE revisions show bytes received only in the file document; CORRUPT
    # revisions carry no size.
    if r["state"] == "COMPLETED" or (r["state"] == "INCOMPLETE" and not listing):
        parts.append(_el("size", r["size"] or 0))
    parts += [_el("md5", r["md5"] or ""), _el("updated", jotta_time(r["updated"])),
              "</%s>" % tag]
    return "".join(parts)


def _deleted_attr(node):
    return ' deleted="%s"' % jotta_time(node["deleted"]) if node["deleted"] is not None else ""


def file_element(node, revs, listing, attrs="", inner="", tail=""):
    """<file ...> as it appears inside a listing (listing=True) or as a document;
    `inner` goes before the revisions, `tail` after them."""
    out = ['<file name="%s" uuid="%s"%s%s%s>' % (xml_attr(node["name"]), node["uuid"],
                                                _deleted_attr(node), attrs,
                                                _stamp() if not listing else "")]
    out.append(inner)
    if node["public_uri"]:
        out.append(_el("publicURI", node["public_uri"]))
        out.append(_el("publicSharePath", "/s/" + node["public_uri"]))
    cur = revs.get(node["cur_rev"])
    pend = revs.get(node["pending_rev"])
    if cur is not None:
        out.append(revision_xml("currentRevision", cur, listing))
    if pend is not None:
        out.append(revision_xml("latestRevision", pend, listing))
    out.append(tail)
    out.append("</file>")
    return "".join(out)


def _children_xml(store, node):
    kids = store.children(node["id"])
    folders = [k for k in kids if k["kind"] == "folder"]
    files = [k for k in kids if k["kind"] == "file"]
    revs = store.revs_by_id([f["cur_rev"] for f in files] + [f["pending_rev"] for f in files])
    out = []
    if folders:
        out.append("<folders>")
        for f in folders:
            out.append('<folder name="%s"%s/>' % (xml_attr(f["name"]), _deleted_attr(f)))
        out.append("</folders>")
    if files:
        out.append("<files>")
        for f in files:
            out.append(file_element(f, revs, True))
        out.append("</files>")
    out.append('<metadata first="" max="" total="%d" num_folders="%d" num_files="%d"/>'
               % (len(folders) + len(files), len(folders), len(files)))
    return "".join(out)


def folder_doc(store, node):
    """GET of a folder or a mountpoint (the listing, docs 3.3 and 5.1)."""
    chain = store.ancestors(node)
    parent_path = "/" + "/".join(n["name"] for n in chain[:-1])
    if node["kind"] == "mountpoint":
        head = ("<mountPoint%s>" % _stamp() + _pre("name", node["name"])
                + _pre("path", parent_path) + _pre("abspath", parent_path)
                + _el("size", store.subtree_size(node["id"]))
                + _el("modified", jotta_time(node["modified"]))
                + _el("device", chain[1]["name"]) + _el("user", chain[0]["name"]))
        return (DECL + head + _children_xml(store, node) + "</mountPoint>").encode("utf-8")
    head = ('<folder name="%s"%s%s>' % (xml_attr(node["name"]), _deleted_attr(node), _stamp())
            + _pre("path", parent_path) + _pre("abspath", parent_path))
    return (DECL + head + _children_xml(store, node) + "</folder>").encode("utf-8")


def file_doc(store, node):
    """GET of a file (docs 5.2), with older revisions under <revisions>."""
    chain = store.ancestors(node)
    parent_path = "/" + "/".join(n["name"] for n in chain[:-1])
    all_revs = store.revisions(node["id"])
    revs = {r["id"]: r for r in all_revs}
    older = [r for r in all_revs if r["id"] not in (node["cur_rev"], node["pending_rev"])]
    tail = ""
    if older:
        tail = "<revisions>" + "".join(revision_xml("revision", r, False)
                                       for r in older) + "</revisions>"
    body = file_element(node, revs, False, tail=tail,
                        inner=_pre("path", parent_path) + _pre("abspath", parent_path))
    return (DECL + body).encode("utf-8")


def user_doc(store, user, capacity):
    root = store.node(user["root"])
    devs = [d for d in store.children(root["id"]) if d["kind"] == "device"]
    out = ["<user%s>" % _stamp(), _el("username", user["username"]),
           _el("account-type", "unlimited" if capacity < 0 else "free"),
           _el("locked", "false"), _el("capacity", capacity),
           _el("max-devices", -1), _el("max-mobile-devices", -1),
           _el("usage", store.usage(user["username"])),
           _el("read-locked", "false"), _el("write-locked", "false"),
           _el("quota-write-locked", "false"), _el("enable-sync", "true"),
           _el("enable-foldershare", "true"), "<devices>"]
    for d in devs:
        out += ["<device>", _pre("name", d["name"]), _pre("display_name", d["name"]),
                _el("type", d["dtype"] or "WORKSTATION"), _el("sid", d["uuid"]),
                _el("size", store.subtree_size(d["id"])),
                _el("modified", jotta_time(d["modified"])), "</device>"]
    out.append("</devices></user>")
    return (DECL + "".join(out)).encode("utf-8")


def device_doc(store, dev):
    mps = [m for m in store.children(dev["id"]) if m["kind"] == "mountpoint"]
    out = ["<device%s>" % _stamp(), _pre("name", dev["name"]),
           _pre("display_name", dev["name"]), _el("type", dev["dtype"] or "WORKSTATION"),
           _el("sid", dev["uuid"]), _el("size", store.subtree_size(dev["id"])),
           _el("modified", jotta_time(dev["modified"])), _el("user", dev["user"]),
           "<mountPoints>"]
    for m in mps:
        out += ["<mountPoint>", _pre("name", m["name"]), _el("size", store.subtree_size(m["id"])),
                _el("modified", jotta_time(m["modified"])), "</mountPoint>"]
    out.append('</mountPoints><metadata first="" max="" total="%d" num_mountpoints="%d"/>'
               '</device>' % (len(mps), len(mps)))
    return (DECL + "".join(out)).encode("utf-8")


def trash_doc(store, trash_mp):
    """The Trash mountpoint: top-level trashed items of the account (docs 8.7)."""
    chain = store.ancestors(trash_mp)
    dev_path = "/" + "/".join(n["name"] for n in chain[:-1])
    items = store.trash_items(trash_mp["user"])
    folders = [i for i in items if i["kind"] == "folder"]
    files = [i for i in items if i["kind"] == "file"]
    revs = store.revs_by_id([f["cur_rev"] for f in files] + [f["pending_rev"] for f in files])
    out = ["<mountPoint%s>" % _stamp(), _pre("name", trash_mp["name"]),
           _pre("path", dev_path), _pre("abspath", dev_path),
           _el("size", sum(r["size"] or 0 for r in revs.values() if r["state"] == "COMPLETED")),
           "<modified></modified>", _el("device", chain[1]["name"]),
           _el("user", chain[0]["name"])]

    def origin(n):
        return store.abs_path(store.node(n["parent"]))
    if folders:
        out.append("<folders>")
        for f in folders:
            out.append('<folder name="%s"%s contextType="TRASH">%s</folder>'
                       % (xml_attr(f["name"]), _deleted_attr(f), _pre("abspath", origin(f))))
        out.append("</folders>")
    if files:
        out.append("<files>")
        for f in files:
            out.append(file_element(f, revs, True, attrs=' contextType="TRASH"',
                                    inner=_pre("abspath", origin(f))))
        out.append("</files>")
    out.append('<metadata first="" max="" total="%d" num_folders="%d" num_files="%d"/>'
               '</mountPoint>' % (len(items), len(folders), len(files)))
    return (DECL + "".join(out)).encode("utf-8")


def liststream(store, node):
    """mode=liststream (docs 5.4): every live folder once, before its files.

    Yields str chunks; no whitespace between elements."""
    chain = store.ancestors(node)
    base = "/" + "/".join(n["name"] for n in chain[2:])  # '/<mountpoint>/...'
    counts = [0, 0]
    yield DECL.rstrip("\n") + "<filestream>"

    def rec(folder, path):
        counts[0] += 1
        yield "<folder><path>%s</path></folder>" % xml_text(path)
        kids = [k for k in store.children(folder["id"]) if k["deleted"] is None]
        files = [k for k in kids if k["kind"] == "file" and k["cur_rev"] is not None]
        revs = store.revs_by_id([f["cur_rev"] for f in files])
        buf = []
        for f in files:
            r = revs[f["cur_rev"]]
            counts[1] += 1
            buf.append("<file><path>%s</path><filename>%s</filename><md5>%s</md5>"
                       "<size>%d</size><modified>%s</modified><created>%s</created></file>"
                       % (xml_text(path), xml_text(f["name"]), r["md5"], r["size"],
                          rfc3339_ms(r["modified"]), rfc3339_ms(r["created"])))
            if len(buf) >= 256:
                yield "".join(buf)
                buf = []
        if buf:
            yield "".join(buf)
        for k in kids:
            if k["kind"] == "folder":
                yield from rec(k, path + "/" + k["name"])

    yield from rec(node, base)
    yield "<stats><folders>%d</folders><files>%d</files></stats></filestream>" % tuple(counts)
