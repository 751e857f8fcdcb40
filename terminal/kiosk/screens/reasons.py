from kivy.app import App
from kivy.factory import Factory
from kivy.properties import BooleanProperty
from kivy.uix.screenmanager import Screen


class ReasonsScreen(Screen):
    """A bad rating's reasons: the configured tags as large toggles and optional text. Submit is
    enabled once something is chosen; a rater who walks away still leaves the rating (timeout)."""

    ready = BooleanProperty(False)

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
