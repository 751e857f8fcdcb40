from kivy.app import App
from kivy.properties import StringProperty
from kivy.uix.screenmanager import Screen


class PinScreen(Screen):
    """The technician PIN pad (staff-facing, Chinese only). Digits are never shown, only dots."""

    entered = StringProperty("")
    message = StringProperty("")

    def on_pre_enter(self, *args) -> None:
        self.entered, self.message = "", ""

    def key(self, digit: str) -> None:
        if len(self.entered) < 12:
            self.entered += digit

    def submit(self) -> None:
        pin, self.entered = self.entered, ""
        self.message = App.get_running_app().try_pin(pin)
