"""The button box's logic: debounce, presses with sequence numbers, retransmission until
acknowledged (each copy with the press's age), stuck buttons, heartbeats, LED commands.
MicroPython and CPython.

Hardware is passed in by ``boxfw.py`` (machine.Pin, the USB data port), which runs on the board
and, with the simulated ``machine`` and ``usb`` of ``simboard/``, in the unix port:

    read_keys()  -> a sequence of 6 booleans, True while a key is down (keys 1..5, then 请评价)
    write(bytes) -> send on the data link;   read() -> bytes received (b"" when none)
    set_leds(mode, key) -> show an LED mode (boxproto.LED_*); key lit after a press, else 0

``step(now_ms)`` does one round of the main loop; call it every few milliseconds.
"""

import boxproto as P

DEBOUNCE_MS = 30  # a key must have been still this long for an edge to count; bounces within it do not
STUCK_MS = 5000  # down longer than this: reported once as stuck, then ignored until released
RESEND_MS = 150  # cheap on a USB link, and keeps the queue short when frames are lost
HEARTBEAT_MS = 2000
QUEUE = 32  # unacknowledged presses kept; when full, the oldest are kept and new ones dropped


class Box:
    def __init__(self, read_keys, write, read, set_leds, boot_id, version, board, debounce_ms=DEBOUNCE_MS):
        self.read_keys, self.write, self.read, self.set_leds = read_keys, write, read, set_leds
        self.debounce_ms = debounce_ms
        self.boot_id, self.version, self.board = boot_id, version, board
        self.decoder = P.Decoder()
        self.seq = 0
        self.pending = []  # [seq, kind, key, pressed_ms, last_sent_ms]
        self.raw = None  # the pins at the last scan; None until the first
        self.changed_at = [0] * 6
        self.down = [False] * 6  # debounced
        self.down_since = [0] * 6
        self.stuck = [False] * 6
        self.last_heartbeat = None
        self.dropped_presses = 0
        self.maintenance = False
        self.loops = 0

    def hello(self):
        self.write(P.encode(P.HELLO, self.boot_id, self.version, self.board))

    def step(self, now):
        self.loops += 1
        self._scan(now)
        for kind, fields in self.decoder.feed(self.read() or b""):
            self._command(kind, fields)
        for item in self.pending:
            if now - item[4] >= RESEND_MS:
                self.write(self._frame(item, now))
                item[4] = now
        if self.last_heartbeat is None or now - self.last_heartbeat >= HEARTBEAT_MS:
            self.write(P.encode(P.HEARTBEAT, self.boot_id, now & 0xFFFFFFFF, len(self.pending)))
            self.last_heartbeat = now

    def _scan(self, now):
        """Eager debounce, as keyboard firmware does: the first edge of a key that has been still
        for the debounce time counts at once (a press reaches the host at the speed of the wire);
        the bounces after it are not still, so they count for nothing. A key whose pins settle in
        another state than the one taken (a glitch) is taken as it settled, after the debounce time."""
        keys = self.read_keys()
        if self.raw is None:  # power-up: a key already down was not pressed now (see _power_up)
            self._power_up(keys, now)
            return
        for i in range(6):
            if keys[i] != self.raw[i]:
                still = now - self.changed_at[i] >= self.debounce_ms
                self.raw[i], self.changed_at[i] = keys[i], now
                if still and self.raw[i] != self.down[i]:
                    self._take(i, now)
            elif self.raw[i] != self.down[i] and now - self.changed_at[i] >= self.debounce_ms:
                self._take(i, now)
            elif self.down[i] and not self.stuck[i] and now - self.down_since[i] >= STUCK_MS:
                self.stuck[i] = True
                self._send(P.STUCK, i + 1, now)

    def _power_up(self, keys, now):
        """The keys as the box finds them at power-up. A press is an edge: a key down from the
        start (stuck, or something resting on it) is no rating, or every reset and replug of a box
        with a stuck key would rate. It counts as held since now, so it is reported as stuck."""
        self.raw = [bool(k) for k in keys]
        self.down = list(self.raw)
        self.changed_at = [now] * 6
        self.down_since = [now] * 6

    def _take(self, i, now):
        self.down[i] = self.raw[i]
        if self.down[i]:
            self.down_since[i] = now
            self._send(P.PRESS, i + 1, now)
        else:
            self.stuck[i] = False

    def _send(self, kind, key, now):
        if len(self.pending) >= QUEUE:
            self.dropped_presses += 1
            return
        self.seq = (self.seq + 1) & 0xFFFF
        item = [self.seq, kind, key, now, now]
        self.pending.append(item)
        self.write(self._frame(item, now))
        if kind == P.PRESS:
            self.set_leds(P.LED_THANKS if key <= 5 else P.LED_PROMPT, key)

    def _frame(self, item, now):
        """The press as sent now: each copy carries its age then, so a host that was away while
        the box kept it (a restart) sees how old it is."""
        return P.encode(item[1], self.boot_id, item[0], item[2], now - item[3])

    def _command(self, kind, fields):
        if kind == P.ACK:
            boot_id, seq = fields
            if boot_id == self.boot_id:
                self.pending = [item for item in self.pending if item[0] != seq]
        elif kind == P.LED:
            self.set_leds(fields[0], 0)
        elif kind == P.MAINT:
            self.maintenance = True
        elif kind == P.ASK:
            self.hello()
