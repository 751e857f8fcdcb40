from kivy.uix.screenmanager import Screen


class RatingScreen(Screen):
    """Who serves you, and five buttons (colour, stars and words: never colour alone). A press
    calls ``app.press``; the session decides what it is."""
