"""Server text in the daemon's log never carries our tokens (issue 14, item 3).

The emulator's error_echo_headers knob makes every error answer carry the
request headers, Authorization included, as a careless proxy does. A mount
with -d (every request and every error body traced) must still show neither
the access nor the refresh token of the account file.

Runs the binary at $JOTTAFS_BIN (default build/jottafs).
"""
import json
import os

import pytest


@pytest.fixture(autouse=True)
def default_knobs(emulator):
    yield
    if emulator.alive():
        emulator.reset_knobs()


def token_pieces(account):
    """The secrets of the account file, and every long piece of them (a JWT's
    segments): none of it may show in a log."""
    path = account.config_home / "jottafs" / f"{account.name}.json"
    data = json.loads(path.read_text())
    secrets = [data["access_token"], data["refresh_token"]]
    pieces = set(secrets)
    for s in secrets:
        pieces.update(p for p in s.split(".") if len(p) >= 16)
    return pieces


def test_echoed_authorization_is_redacted_in_debug_log(emulator, account, mounter):
    emulator.seed([{"path": "dir/a.txt", "content": "a"}], user=account.user)
    before = token_pieces(account)
    m = mounter(account, extra_args=["-d"], allow_errors=True)
    emulator.reset_stats()
    emulator.set_knobs(error_echo_headers=True, error_rate=1.0, error_status=400,
                       error_kinds="folder,file,liststream")
    with pytest.raises(OSError):
        os.listdir(os.path.join(m.path, "dir"))
    # a real (not injected) error answer too: a file the service does not have
    emulator.set_knobs(error_rate=0.0)
    with pytest.raises(OSError):
        os.stat(os.path.join(m.path, "dir", "nosuchfile"))
    faults = emulator.stats()["faults"]["error"]
    emulator.reset_knobs()
    secrets = before | token_pieces(account)
    m.unmount()                         # the daemon has exited: its log is complete
    out = m.output()
    assert faults >= 1, "no error was injected"
    # the echo reached the log, redacted
    assert "error body:" in out and "request headers:" in out, out[-4000:]
    assert "Authorization: Bearer [redacted]" in out, out[-4000:]
    for s in secrets:
        assert s not in out, "a token (or a piece of one) leaked into the -d log"
