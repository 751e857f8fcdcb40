from kivy.uix.screenmanager import Screen


class ThanksScreen(Screen):
    """感谢您的评价, shown only after the rating is on disk."""
