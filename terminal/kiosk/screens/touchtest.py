from kivy.graphics import Color, Ellipse
from kivy.metrics import dp
from kivy.properties import StringProperty
from kivy.uix.screenmanager import Screen


class TouchTestScreen(Screen):
    """Every touch leaves a dot where the screen felt it; device presses are counted by level.
    Nothing here is a rating: the session is not asked."""

    counts = StringProperty("")

    def on_pre_enter(self, *args) -> None:
        self.touches, self.presses = 0, {}
        self.ids.pad.canvas.after.clear()
        self._show()

    def on_touch_down(self, touch):
        if self.ids.pad.collide_point(*touch.pos):
            self.touches += 1
            with self.ids.pad.canvas.after:
                Color(0.85, 0.2, 0.2, 1)
                Ellipse(pos=(touch.x - dp(10), touch.y - dp(10)), size=(dp(20), dp(20)))
            self._show()
        return super().on_touch_down(touch)

    def device_press(self, level: int, device: str) -> None:
        key = f"{device} {level}"
        self.presses[key] = self.presses.get(key, 0) + 1
        self._show()

    def _show(self) -> None:
        pressed = "，".join(f"{k}×{n}" for k, n in sorted(self.presses.items())) or "无"
        self.counts = f"触摸 {self.touches} 次；按键：{pressed}"
