"""Shared pytest fixtures: an emulator per test module, accounts and mounts
with guaranteed clean-up. See helpers.py for the sshfs-style helpers."""
import hashlib
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from emu import Emulator  # noqa: E402
from helpers import Account, Mount, rclone_for  # noqa: E402


def _serve_emulator():
    """An emulator for the fixture's scope; at teardown it must have exited
    cleanly, without a Python traceback."""
    e = Emulator()
    yield e
    rc = e.stop()
    err = e.stderr()
    e.close()
    assert "Traceback" not in err, "emulator raised:\n" + err
    assert rc == 0, "emulator exited %s:\n%s" % (rc, err)


@pytest.fixture(scope="module")
def emulator():
    """One emulator per test module; tests isolate themselves by user."""
    yield from _serve_emulator()


@pytest.fixture
def own_emulator():
    """An emulator of the test's own, for tests that stop or cut it off."""
    yield from _serve_emulator()


def pytest_assertrepr_compare(config, op, left, right):
    """Explain a mismatch of large bytes/str cheaply. With CI set, pytest
    otherwise diffs the whole values with difflib (quadratic): a failing
    comparison of two 256 KiB buffers then runs for hours instead of failing."""
    big = 4096
    if op != "==" or not isinstance(left, (bytes, str)) or type(left) is not type(right):
        return None
    if len(left) <= big and len(right) <= big:
        return None
    n = min(len(left), len(right))
    first = next((i for i in range(n) if left[i] != right[i]), n)
    enc = (lambda b: b) if isinstance(left, bytes) else (lambda t: t.encode("utf-8", "surrogateescape"))
    return ["%s of %d vs %d items differ" % (type(left).__name__, len(left), len(right)),
            "first difference at offset %d: %r vs %r" % (first, left[first:first + 16],
                                                         right[first:first + 16]),
            "md5 %s vs %s" % (hashlib.md5(enc(left)).hexdigest(),
                              hashlib.md5(enc(right)).hexdigest())]


def _user_for(request):
    """A login name unique to the test, so each test has an empty account."""
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-40:]
    return "u" + name


@pytest.fixture
def account(emulator, tmp_path, request):
    """A logged-in jottafs account (its own emulator user) on the module's emulator."""
    acc = Account(emulator, tmp_path, user=_user_for(request))
    acc.login()
    return acc


@pytest.fixture
def mounter(tmp_path):
    """Factory: mounter(account, **kw) -> Mount; every mount is cleaned up."""
    mounts = []

    def make(account, path=None, **kw):
        m = Mount(account, path or (tmp_path / f"mnt{len(mounts)}"), **kw)
        mounts.append(m)
        return m

    yield make
    for m in mounts:
        m.cleanup()


@pytest.fixture
def mount(account, mounter):
    """Jotta/Archive of a fresh account, mounted."""
    return mounter(account)


@pytest.fixture
def rclone(emulator, account, tmp_path):
    """rclone 1.60 configured for the test's account (remote 'jc')."""
    return rclone_for(emulator, account, tmp_path / "rclone")
