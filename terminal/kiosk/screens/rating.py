from kivy.uix.screenmanager import Screen


class RatingScreen(Screen):
    """Who serves you, and five buttons. Layout in rating.kv; a press calls ``app.rate``."""
