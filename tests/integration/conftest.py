"""Shared pytest fixtures: an emulator per test module, accounts and mounts
with guaranteed clean-up. See jfs_helpers.py for the sshfs-style helpers."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from emu import Emulator  # noqa: E402
from jfs_helpers import Account, Mount  # noqa: E402


@pytest.fixture(scope="module")
def emulator():
    """One emulator per test module; tests isolate themselves by user."""
    e = Emulator()
    yield e
    rc = e.stop()
    err = e.stderr()
    e.close()
    assert "Traceback" not in err, "emulator raised:\n" + err
    assert rc == 0, "emulator exited %s:\n%s" % (rc, err)


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
