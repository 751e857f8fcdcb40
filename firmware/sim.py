"""The box's firmware in the MicroPython unix port, for tests, benchmarks and ``make run``.

    micropython firmware/sim.py LINK_TTY [BOARD_ID [DEBOUNCE_MS]]

The real ``box.Box`` logic runs against a simulated pin layer: lines on stdin press and release
keys (``D3`` down, ``U3`` up), ``B3`` makes key 3 bounce (down/up on every 2 ms loop, six times,
then down), ``Q`` quits; LED changes are printed on stdout (``LED mode key``).
The data link is a pseudo-terminal (set to raw mode by whoever made it).
"""

import os
import select
import sys
import time

sys.path.append(__file__.rsplit("/", 1)[0] if "/" in __file__ else ".")

from box import Box  # noqa: E402

VERSION = "0.1.0"

link = open(sys.argv[1], "r+b")
board = sys.argv[2] if len(sys.argv) > 2 else "sim-" + "".join("%02x" % b for b in os.urandom(4))
keys = [False] * 6
poller = select.poll()
poller.register(link, select.POLLIN)
poller.register(sys.stdin, select.POLLIN)


def readable(stream):
    for obj, event in poller.poll(0):
        if obj is stream and event & select.POLLIN:
            return True
    return False


def read_link():
    data = bytearray()
    while len(data) < 256 and readable(link):
        chunk = link.read(1)
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def write_link(frame):
    link.write(frame)


def set_leds(mode, key):
    print("LED", mode, key)


queued = []  # key changes read from stdin, applied one at a time
bouncing = []  # [key index, loops left]: contact bounce, a change on every loop
last_change = -1000


def control(now):
    """Read key commands; apply the next change only once the box has taken the last one in
    (its debounced state matches the pins), as a finger is never quicker than the debounce,
    however slow a loaded machine makes this loop."""
    global last_change
    while readable(sys.stdin):
        line = sys.stdin.readline().strip()
        if not line or line == "Q":
            return False
        if line == "STATS":
            print("STATS", box.loops, len(box.pending), box.dropped_presses)
        elif line[0] in "DUB" and line[1:].isdigit() and 1 <= int(line[1:]) <= 6:
            queued.append(line)
    if bouncing:
        index, left = bouncing[0]
        keys[index] = left % 2 == 0  # ends down
        bouncing[0][1] -= 1
        if bouncing[0][1] < 0:
            bouncing.pop(0)
            last_change = now
        return True
    if queued and box.down == keys and now - last_change > box.debounce_ms:
        line = queued.pop(0)
        if line[0] == "B":
            bouncing.append([int(line[1:]) - 1, 12])
        else:
            keys[int(line[1:]) - 1] = line[0] == "D"
        last_change = now
    return True


boot_id = int.from_bytes(os.urandom(4), "big")
debounce = int(sys.argv[3]) if len(sys.argv) > 3 else 30
box = Box(lambda: keys, write_link, read_link, set_leds, boot_id, VERSION, board, debounce)
box.hello()
print("READY", boot_id)
elapsed, last = 0, time.ticks_ms()
while control(elapsed):
    now = time.ticks_ms()
    elapsed += time.ticks_diff(now, last)
    last = now
    box.step(elapsed)
    time.sleep_ms(2)
