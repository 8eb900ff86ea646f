"""Shared pytest fixtures: an emulator per test module, accounts and mounts
with guaranteed clean-up. See jfs_helpers.py for the sshfs-style helpers."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from jfs_helpers import Account, Mount  # noqa: E402


@pytest.fixture
def account(emulator, tmp_path):
    """A logged-in jottafs account against the module's emulator."""
    acc = Account(emulator, tmp_path)
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
