"""What the server's logs say of a request: its path with the codes of citizens' links masked
(``link_tokens.hidden``). gunicorn's access log (``AccessLog``, ``serve``'s logger class) and Django's
own lines (``HideLinks`` on the console handler: "Not Found: /s/…") name every path asked for, and a
journal has more readers than the database."""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger

from .link_tokens import hidden


class HideLinks(logging.Filter):
    """A log record's message with the codes of citizens' links masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = hidden(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


class AccessLog(Logger):
    """gunicorn's logger, its access lines' request, path and referer with link codes masked."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = hidden(atoms[key])
        return atoms
