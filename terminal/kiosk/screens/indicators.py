from kivy.app import App
from kivy.factory import Factory
from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen


class IndicatorsScreen(Screen):
    """Indicator ratings (服务效率, 服务水平, 服务态度) when the settings ask for them: one row of
    five choices each; the session goes on by itself when every row has an answer."""

    def show_dimensions(self, dimensions: list[str], levels: list, tr) -> None:
        rows = self.ids.rows
        rows.clear_widgets()
        labels = [Label(text=tr(dim), font_size=dp(26), bold=True, color=(0.1, 0.1, 0.15, 1), size_hint_x=None)
                  for dim in dimensions]
        for label in labels:
            label.texture_update()
        width = max([dp(140)] + [label.texture_size[0] + dp(16) for label in labels])  # one column for all
        for dim, label in zip(dimensions, labels):
            row = BoxLayout(spacing=dp(8))
            label.width = width
            row.add_widget(label)
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
