"""The first-boot screen: the server's address and the window's enrollment code, typed on a key
grid of its own (a touchscreen has no keyboard; Kivy's VKeyboard has small keys and layouts a
technician need not see). Only the characters a URL or a code needs; in the code field the
letters are capitals and those central never issues (0, O, 1, I) are off."""

from kivy.app import App
from kivy.factory import Factory
from kivy.properties import StringProperty
from kivy.uix.screenmanager import Screen

from terminal.core.provision import CODE_ALPHABET, CODE_LENGTH

ROWS = ("1234567890", "qwertyuiop-", "asdfghjkl:/", "zxcvbnm.")
NAMES = {"-": "dash", ":": "colon", "/": "slash", ".": "dot"}  # the keys' tags: key_a, key_colon, …
URL_CHARS = set("".join(ROWS))
MAX_SERVER = 120


class ProvisionScreen(Screen):
    server = StringProperty("https://")
    code = StringProperty("")  # the code's letters and digits only; shown in groups of four
    field = StringProperty("server")  # the field the keys type into

    def on_kv_post(self, _base) -> None:
        self.keys = {}
        for row, chars in zip((self.ids.row_1, self.ids.row_2, self.ids.row_3, self.ids.row_4), ROWS):
            for ch in chars:
                key = Factory.GridKey(text=ch)
                key.tag, key.char = f"key_{NAMES.get(ch, ch)}", ch
                key.bind(on_release=lambda k: self.type_text(k.char))
                row.add_widget(key)
                self.keys[ch] = key
        app = App.get_running_app()
        for row, tag, label, width, action in ((self.ids.row_1, "key_back", "删除", 1.5, self.backspace),
                                               (self.ids.row_4, "key_clear", "清除", 3, self.clear)):
            key = Factory.GridKey(size_hint_x=width, font_size=self.ids.enroll.font_size)
            key.tag, key.label = tag, label
            key.bind(on_release=lambda _k, act=action: act())
            row.add_widget(key)
            self.keys[tag] = key
        app.bind(language=self._name_keys)
        self._name_keys()

    def _name_keys(self, *_args) -> None:
        """The two word keys, in the screen's language (the font has no ⌫ glyph)."""
        app = App.get_running_app()
        for tag in ("key_back", "key_clear"):
            self.keys[tag].text = app.tr(self.keys[tag].label)
        self.on_field(self, self.field)

    def on_field(self, _screen, field: str) -> None:
        if not hasattr(self, "keys"):
            return
        for ch, key in self.keys.items():
            if len(ch) > 1:
                continue
            key.text = ch.upper() if field == "code" else ch
            key.disabled = field == "code" and ch.upper() not in CODE_ALPHABET

    def select(self, field: str) -> None:
        self.field = field

    def type_text(self, text: str) -> None:
        for ch in text:
            if self.field == "code":
                if ch.upper() in CODE_ALPHABET and len(self.code) < CODE_LENGTH:
                    self.code += ch.upper()
            elif ch.lower() in URL_CHARS and len(self.server) < MAX_SERVER:
                self.server += ch.lower()

    def backspace(self) -> None:
        if self.field == "code":
            self.code = self.code[:-1]
        else:
            self.server = self.server[:-1]

    def clear(self) -> None:
        if self.field == "code":
            self.code = ""
        else:
            self.server = ""

    def shown_code(self, code: str) -> str:
        return "-".join(code[i:i + 4] for i in range(0, len(code), 4))

    def submit(self) -> None:
        App.get_running_app().enroll(self.server, self.code)
