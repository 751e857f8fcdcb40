"""Debian's nginx, run privately on loopback as the reverse proxy in front of several app servers:
what an operator runs when one central server is not enough (docs/operators.md: "Several app servers").

Uploads are idempotent by id, so a request that a dying node never answered is passed on to the
next one (``non_idempotent``); a node that fails is left out for ``fail_timeout``. A 503 is not
passed on: the node that shed the upload has already recorded its nonce, so the next node would
refuse it as replayed; the terminal waits the 503's Retry-After and signs the batch afresh."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from loopback_central import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{http}
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream central {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 9m;
        client_body_buffer_size 1m;
        location / {{
            proxy_pass http://central;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_next_upstream error timeout http_502 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    url: str
    folder: Path
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(folder: Path, upstreams: list[str], http: str = "") -> Nginx:
    """nginx on a free loopback port in front of ``upstreams`` (``http://127.0.0.1:PORT`` each);
    ``http``: more directives for its ``http`` block (``gzip on;``, say)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    servers = "\n".join(f"        server {u.split('://', 1)[1]} max_fails=1 fail_timeout=10s;" for u in upstreams)
    config = folder / "nginx.conf"
    config.write_text(CONFIG.format(folder=folder, port=port, servers=servers, http=http,
                                    user="user root;" if os.geteuid() == 0 else ""), encoding="utf-8")
    proc = subprocess.Popen([NGINX, "-c", str(config), "-p", str(folder)], stdout=subprocess.DEVNULL,
                            stderr=(folder / "stderr.log").open("ab"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    import urllib.request
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(folder / 'stderr.log').read_text()[-2000:]}"
                               f"{(folder / 'error.log').read_text()[-2000:] if (folder / 'error.log').exists() else ''}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as answer:
                if answer.status == 200:
                    return Nginx(url, folder, proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nginx did not answer")
