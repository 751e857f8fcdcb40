from kivy.app import App
from kivy.factory import Factory
from kivy.clock import Clock
from kivy.properties import BooleanProperty, NumericProperty
from kivy.uix.screenmanager import Screen


class ReasonsScreen(Screen):
    """A bad rating's reasons: the configured tags as large toggles and optional text. Submit is
    enabled once something is chosen; a rater who walks away still leaves the rating (timeout)."""

    ready = BooleanProperty(False)
    keyboard_room = NumericProperty(0)  # the on-screen keyboard's height while it is docked

    def show_tags(self, tags: list[dict]) -> None:
        grid = self.ids.tags
        grid.clear_widgets()
        for tag in tags:
            toggle = Factory.ReasonToggle(text=str(tag.get("label", tag["code"])))
            toggle.code = str(tag["code"])
            toggle.bind(state=lambda *_: self.changed())
            grid.add_widget(toggle)
            self.ids[f"reason_{tag['code']}"] = toggle

    def on_pre_enter(self, *args) -> None:
        for toggle in self.ids.tags.children:
            toggle.state = "normal"
        self.ids.text.text = ""
        self.changed()

    def chosen(self) -> list[str]:
        return [t.code for t in reversed(self.ids.tags.children) if t.state == "down"]

    def changed(self) -> None:
        self.ready = bool(self.chosen() or self.ids.text.text.strip())

    def submit(self) -> None:
        App.get_running_app().window.submit(self.chosen(), self.ids.text.text)

    def make_room(self) -> None:
        """While the docked keyboard is up, lay the screen out above it (tags scroll, the text
        field and 提交 stay visible); the keyboard appears a frame after the focus."""
        Clock.schedule_once(lambda _dt: self._measure_keyboard(), 0.05)

    def _measure_keyboard(self) -> None:
        from kivy.core.window import Window
        from kivy.uix.vkeyboard import VKeyboard
        boards = [w for w in Window.children if isinstance(w, VKeyboard)]
        self.keyboard_room = max(0, boards[0].top - self.y) + 8 if boards and self.ids.text.focus else 0
