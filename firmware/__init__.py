"""The button box firmware (MicroPython). The host imports ``firmware.boxproto``, the very file
that is flashed, and uses ``FILES``/``version()`` to flash and check a box; this ``__init__`` and
``sim.py`` stay on the host and are not copied to the board."""

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
# What a box holds, from the mip package list (`mpremote mip install ./firmware/package.json`
# does by hand what flash-box does); main.py comes last, as it starts the others.
FILES = tuple(target for target, _ in json.loads((HERE / "package.json").read_text())["urls"])


def declared(name: str, source_dir=HERE) -> str:
    """A text constant of boxfw.py (which imports ``machine`` and cannot be imported here)."""
    match = re.search(rf'^{name} = "([^"]+)"', (Path(source_dir) / "boxfw.py").read_text(), re.M)
    if not match:
        raise ValueError(f"no {name} in {source_dir}/boxfw.py")
    return match.group(1)


def version(source_dir=HERE) -> str:
    """The firmware version a source tree declares, as the box reports it in HELLO."""
    return declared("VERSION", source_dir)
