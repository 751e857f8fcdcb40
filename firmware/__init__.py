"""The button box firmware (MicroPython). The host imports ``firmware.boxproto``, the very file
that is flashed; this ``__init__`` exists for that import and is not copied to the board."""
