"""jemu: the modules behind tests/emulator/jottaemu, a fake Jottacloud service.

Python standard library only.  See jemu/server.py for the list of choices made
where the protocol reference (docs/jottacloud-api.md section 15) is silent.
"""
