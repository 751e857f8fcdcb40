"""``WrapLabel``: a Kivy label whose text wraps at a width its layout gives it (``text_size``
follows ``width`` or ``size``), rendered only once it has one.

A plain Label is made 100 px wide (Kivy's default), lays its text out there, again at the 0 px a
layout passes through on its first pass, and a third time at its real width. Text with no spaces
to break at, as Chinese is, is measured a character at a time at each of them: on the idle
screen 1,526 measurements where 136 show, most of the text drawing in the kiosk's first frame
(bench/kiosk_ui.py). This label starts 0 px wide and is not laid out while its wrapping width
has no room for a line; when its layout widens it, ``text_size`` changes and it renders there.
"""

from __future__ import annotations

from kivy.factory import Factory
from kivy.uix.label import Label


class WrapLabel(Label):
    def __init__(self, **kwargs):
        kwargs.setdefault("width", 0)  # not Kivy's 100 px: no layout happens there
        super().__init__(**kwargs)

    def texture_update(self, *largs) -> None:
        wrap_width = self.text_size[0]
        if wrap_width is not None and wrap_width < 1:  # no room for a line: nothing to show
            if self.texture is not None:  # what was shown at a width it no longer has
                self.texture, self.texture_size = None, [0, 0]
            return
        super().texture_update(*largs)


Factory.register("WrapLabel", cls=WrapLabel)
