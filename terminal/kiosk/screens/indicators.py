from kivy.app import App
from kivy.factory import Factory
from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen


class IndicatorsScreen(Screen):
    """Indicator ratings (服务效率, 服务水平, 服务态度) when the settings ask for them: one row of
    five choices each; the session goes on by itself when every row has an answer."""

    def show_dimensions(self, dimensions: list[str], levels: list) -> None:
        rows = self.ids.rows
        rows.clear_widgets()
        for dim in dimensions:
            row = BoxLayout(spacing=dp(8))
            row.add_widget(Label(text=dim, font_size=dp(26), bold=True, color=(0.1, 0.1, 0.15, 1),
                                 size_hint_x=None, width=dp(32) * max(4, len(dim))))
            for code, label, _stars, colour in levels:
                button = Factory.ScoreButton(text=label, group=f"score-{dim}", allow_no_selection=False)
                button.colour = colour
                button.bind(on_release=lambda b, d=dim, c=code: App.get_running_app().window.score(d, c))
                row.add_widget(button)
                self.ids[f"score_{dim}_{code}"] = button
            rows.add_widget(row)

    def on_pre_enter(self, *args) -> None:
        for row in self.ids.rows.children:
            for child in row.children:
                if hasattr(child, "group"):
                    child.state = "normal"
