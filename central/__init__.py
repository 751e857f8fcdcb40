"""Reference central server: receives ratings from terminals, serves content and statistics."""
