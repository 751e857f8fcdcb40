"""The pure core: domain rules with no I/O, shared by kiosk, headless terminal, sync and central."""
