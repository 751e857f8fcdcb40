from kivy.factory import Factory
from kivy.uix.screenmanager import Screen


class AttractScreen(Screen):
    """Idle: who serves at this window, the service guides and the hall's notices, scrollable."""

    def show_content(self, guides: list[dict], notices: list[dict], tr) -> None:
        box = self.ids.info
        box.clear_widgets()
        for kind, items in ((tr("办事指南"), guides), (tr("通知公告"), notices)):
            for item in items:
                block = Factory.InfoBlock()  # kv-declared properties exist only once built
                block.heading, block.body = f"{kind} · {item.get('title', '')}", str(item.get("body", ""))
                box.add_widget(block)
        self.ids.scroller.scroll_y = 1

    def on_pre_enter(self, *args) -> None:
        self.ids.scroller.scroll_y = 1  # each citizen starts at the top of the guides
