"""Host-side device drivers and platform files for the terminal (see README.md here)."""
