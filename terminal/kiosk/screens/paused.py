from kivy.uix.screenmanager import Screen


class PausedScreen(Screen):
    """暂停服务: nobody is logged in at this window; presses are flagged, never counted."""
