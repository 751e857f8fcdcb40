from kivy.app import App
from kivy.properties import StringProperty
from kivy.uix.screenmanager import Screen


class TechnicianScreen(Screen):
    """What a technician with a laptop would otherwise have to ssh in for (staff-facing)."""

    facts = StringProperty("")

    def on_pre_enter(self, *args) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.facts = "\n".join(f"{name}：{value}" for name, value in App.get_running_app().technician_facts())
