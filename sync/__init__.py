"""The sync daemon: uploads the terminal's ratings to the central server, whatever the network does."""
