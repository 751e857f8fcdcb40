"""Evaluation channels (评价渠道) and the input devices a terminal takes ratings from.

Codes follow the provincial interfaces: 1 PC, 2 mobile, 3 QR code, 4 hall tablet, 5 other hall
terminal (button box), 6 SMS, 7 system default rating. 8, telephone call-back (电话回访), is this
system's own: provinces code it differently, so ``Policy.callback_channel`` says which code a
call-back's rating takes, and each platform's export maps it. A rating also names the device it
came from, because one terminal may have a touchscreen and a button box at once.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Channel(IntEnum):
    PC = 1
    MOBILE = 2
    QR_CODE = 3
    HALL_TABLET = 4
    HALL_TERMINAL = 5
    SMS = 6
    SYSTEM_DEFAULT = 7
    TELEPHONE = 8  # 电话回访: not in the provincial list; each platform's export maps it (Policy.callback_channel)

    @property
    def zh(self) -> str:
        return _CHANNEL_ZH[self]


_CHANNEL_ZH = {
    Channel.PC: "PC端",
    Channel.MOBILE: "移动端",
    Channel.QR_CODE: "二维码",
    Channel.HALL_TABLET: "政务大厅平板电脑",
    Channel.HALL_TERMINAL: "政务大厅其他终端",
    Channel.SMS: "短信",
    Channel.SYSTEM_DEFAULT: "系统默认评价",
    Channel.TELEPHONE: "电话回访",
}


class InputDevice(str, Enum):
    TOUCHSCREEN = "touchscreen"
    BUTTON_BOX = "button_box"
    GPIO_BUTTONS = "gpio_buttons"
    CONSOLE = "console"  # the demo's keys 1–5; never used on a deployed terminal

    @property
    def channel(self) -> Channel:
        """The channel a press on this device is reported under."""
        return Channel.HALL_TABLET if self is InputDevice.TOUCHSCREEN else Channel.HALL_TERMINAL
