"""Window rating terminal (评价器): kiosk, local store and the pure rating core."""

__version__ = "0.1.0"
