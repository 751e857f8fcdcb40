"""The button box's link protocol: one file, flashed onto the box and imported by the host.

Runs under MicroPython and CPython alike (no dataclasses, no typing, nothing beyond ``struct``).

A frame on the wire is ``COBS(type, body, crc16) + 0x00``. COBS removes every zero byte from the
frame, so 0x00 only ever ends a frame: after line noise, a lost byte or a reconnect the decoder
resynchronises at the next 0x00 and nothing before it can pass as a frame. The CRC-16/CCITT-FALSE
over type and body rejects what noise makes of a frame; a frame of unknown type or the wrong
length for its type is dropped too. Dropped frames are counted, never turned into presses.

Messages (box -> host)::

    HELLO      boot_id u32, firmware version (text), board id (text): each printable ASCII, at
               most 32 bytes (text the host logs and reports in its heartbeat: no control character)
    PRESS      boot_id u32, seq u16, key u8, age_ms u16
                                                 key 1..5 = level (5 = 非常满意), 6 = 请评价 key;
                                                 age_ms: how long ago it was pressed, as each copy is
                                                 sent (MAX_AGE_MS: that long or longer)
    STUCK      boot_id u32, seq u16, key u8, age_ms u16   a button held down: reported once, not a press
    HEARTBEAT  boot_id u32, uptime_ms u32, queued u8

Messages (host -> box)::

    ACK        boot_id u32, seq u16              the host has the press; stop sending it
    LED        mode u8                            OFF, PROMPT, THANKS, PAUSED, ERROR
    MAINT      (empty)                            restart in maintenance mode: no watchdog, REPL free
    ASK        (empty)                            send HELLO again (a host that started after the box)

Every PRESS and STUCK is retransmitted until acknowledged; the host drops repeats by
(boot_id, seq), so each press counts once however often it crosses the link. Its age tells the
host a press made before it (re)started, still queued on the box, from one made now. Firmware
0.2.0 and before sent PRESS and STUCK without ``age_ms``: they are read with an age of None.
"""

import struct

HELLO, PRESS, STUCK, HEARTBEAT = 0x01, 0x02, 0x03, 0x04
ACK, LED, MAINT, ASK = 0x10, 0x11, 0x12, 0x13
NAMES = {HELLO: "hello", PRESS: "press", STUCK: "stuck", HEARTBEAT: "heartbeat", ACK: "ack", LED: "led",
         MAINT: "maint", ASK: "ask"}
LED_OFF, LED_PROMPT, LED_THANKS, LED_PAUSED, LED_ERROR = 0, 1, 2, 3, 4
STAFF_KEY = 6
MAX_FRAME = 96  # encoded bytes without the delimiter; anything longer is noise
MAX_TEXT = 32  # bytes of HELLO's version and of its board id
MAX_AGE_MS = 0xFFFF  # a press's age saturates here (65 s): far past any age a host takes

_FIXED = {PRESS: ">IHBH", STUCK: ">IHBH", HEARTBEAT: ">IIB", ACK: ">IH", LED: ">B", MAINT: "", ASK: ""}
_AGELESS = ">IHB"  # PRESS and STUCK as firmware 0.2.0 and before sent them


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data):
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out.extend(block)
            block = bytearray()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out.extend(block)
                block = bytearray()
    out.append(len(block) + 1)
    out.extend(block)
    return bytes(out)


def cobs_decode(data):
    """The bytes COBS encoded, or None if ``data`` is not valid COBS."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            return None
        out.extend(data[i + 1:i + code])
        i += code
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


def hello_text(data):
    """Whether HELLO's ``data`` (bytes) is a version or board id: printable ASCII, at most
    MAX_TEXT bytes. A control character would reach the journal as it is and the heartbeat,
    which the central server refuses whole for it."""
    if len(data) > MAX_TEXT:
        return False
    for byte in data:
        if not 0x20 <= byte <= 0x7E:
            return False
    return True


def encode(kind, *fields):
    """A frame ready for the wire (with its 0x00 delimiter)."""
    if kind == HELLO:
        boot_id, version, board = fields
        v, b = version.encode(), board.encode()
        if not (hello_text(v) and hello_text(b)):
            raise ValueError("version and board id are printable ASCII of at most 32 bytes")
        body = struct.pack(">IB", boot_id, len(v)) + v + b
    elif kind in (PRESS, STUCK):
        boot_id, seq, key, age_ms = fields
        body = struct.pack(_FIXED[kind], boot_id, seq, key, min(max(age_ms, 0), MAX_AGE_MS))
    else:
        body = struct.pack(_FIXED[kind], *fields)
    raw = bytes([kind]) + body
    return cobs_encode(raw + struct.pack(">H", crc16(raw))) + b"\x00"


def parse(frame):
    """One frame (without the delimiter) -> (kind, fields tuple), or None if it is not valid."""
    if not frame or len(frame) > MAX_FRAME:
        return None
    raw = cobs_decode(frame)
    if raw is None or len(raw) < 3:
        return None
    body, crc = raw[:-2], struct.unpack(">H", raw[-2:])[0]
    if crc16(body) != crc:
        return None
    kind, payload = body[0], body[1:]
    if kind == HELLO:
        if len(payload) < 5:
            return None
        boot_id, vlen = struct.unpack(">IB", payload[:5])
        version, board = payload[5:5 + vlen], payload[5 + vlen:]
        if 5 + vlen > len(payload) or not (hello_text(version) and hello_text(board)):
            return None
        return kind, (boot_id, version.decode(), board.decode())
    fmt = _FIXED.get(kind)
    if kind in (PRESS, STUCK) and len(payload) == struct.calcsize(_AGELESS):
        fields = struct.unpack(_AGELESS, payload) + (None,)  # older firmware: age unknown
    elif fmt is None or len(payload) != struct.calcsize(fmt):
        return None
    else:
        fields = struct.unpack(fmt, payload) if fmt else ()
    if kind in (PRESS, STUCK) and not 1 <= fields[2] <= STAFF_KEY:
        return None
    if kind == LED and fields[0] > LED_ERROR:
        return None
    return kind, fields


class Decoder:
    """Bytes in any chunks -> valid messages; garbage is counted in ``dropped`` and skipped."""

    def __init__(self):
        self.buffer = bytearray()
        self.dropped = 0
        self.overflow = False  # inside an over-long run: skip to the next delimiter

    def feed(self, data):
        messages = []
        for byte in data:
            if byte == 0:
                if self.overflow:
                    self.dropped += 1
                elif self.buffer:
                    message = parse(bytes(self.buffer))
                    if message is None:
                        self.dropped += 1
                    else:
                        messages.append(message)
                self.buffer = bytearray()
                self.overflow = False
            elif not self.overflow:
                if len(self.buffer) >= MAX_FRAME:
                    self.overflow = True
                    self.buffer = bytearray()
                else:
                    self.buffer.append(byte)
        return messages
