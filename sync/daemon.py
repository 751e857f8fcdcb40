"""The sync daemon: upload ratings, send heartbeats, pull content — for weeks, unattended.

Uploading: a rating leaves ``pending`` only on the server's per-item word: ``accepted`` or
``duplicate`` make it delivered, ``rejected`` makes it a dead letter with the reason. Anything else
(no answer, an error status, a body that is not the API's) leaves the whole batch pending and
waits with backoff. Time offline never makes us give up on a rating.

Batches are capped by count (``batch_size``) and bytes (``outbox.MAX_BATCH_BYTES``); by age, in that a
pending rating waits at most one poll ``interval`` before it is sent — batches are never held back
to fill up.
"""

from __future__ import annotations

import functools
import logging
import random
import shutil
import threading
import time
from datetime import datetime, timezone

import terminal
from terminal import systemd
from terminal.clock import SystemClock
from terminal.config import Config, ConfigError
from terminal.core.checks import escape_unclean, unclean_path
from terminal.credentials import FILENAME, Credentials, CredentialsError, file_stamp, load_usable
from terminal.store import Store, StoreError

from . import content, tls
from .backoff import Backoff
from .client import EVENTS, CentralClient
from .outbox import DrainResult, TransientError, Uploader  # noqa: F401 (DrainResult: the result ``upload`` gives)

log = logging.getLogger("rating-sync")
WATCHDOG_FEED_EVERY = 50.0  # the unit's WatchdogSec is 120: a long backoff still feeds it
UPLOAD_SLICE_S = 30.0  # a long backlog is drained in slices this long, the watchdog fed between
STALL_GRACE_S = 60.0  # beyond one call: the database, the disk, an idle wait between two signs of progress


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SyncDaemon:
    """Two lanes, each on its own thread with its own database connection and HTTP session, so
    neither can hold the other up: the upload lane (``upload_step``) drains the outbox with its
    backoff; the contact lane (``contact_step``) sends the heartbeat every ``heartbeat_s`` (±10 %
    jitter) and pulls content when it changed. An upload waiting out its timeout or a week's backlog
    never makes a delivering terminal look offline. ``run`` loops both until asked to stop, and
    feeds the systemd watchdog only while each lane shows progress (``stalled``)."""

    def __init__(self, config: Config, clock: SystemClock | None = None):
        self.config = config
        self.clock = clock or SystemClock()
        self.store = Store(config.db_path)
        self._stamp = file_stamp(config.terminal.data_dir / FILENAME)  # before the load: a change between is seen
        credentials = Credentials.load(config.terminal.data_dir)
        self._stamps: dict[int, tuple | None] = {}  # id(client) -> the credentials file it signs with
        offset = self.store.state().get("clock_offset_s", 0.0)
        self.client = client_for(config, credentials, clock_offset=offset)
        self.uploader = Uploader(self.store, self.client, config.sync.batch_size, self.clock)
        self.events = Uploader(self.store, self.client, config.sync.batch_size, self.clock, EVENTS)
        self.backoff = Backoff(cap=config.sync.backoff_max)
        self._credentials, self._offset = credentials, offset
        self.rng = random.Random()
        self.invite_results: list[dict] = []  # outcomes of the heartbeat's invitations, for the next heartbeat
        self.next_upload = 0.0
        self.next_heartbeat = 0.0
        self.next_content = 0.0
        self.progress: dict[str, float] = {}  # lane -> when it last went round its loop (time.monotonic())
        self.lane_clients: dict[str, CentralClient] = {}  # lane -> its HTTP client, whose answers are progress too

    def close(self) -> None:
        opened = [self.__dict__[name] for name in ("contact_client", "contact_store") if name in self.__dict__]
        for part in (self.client, self.store, *opened):
            part.close()

    # The contact lane's own connection and HTTP session, opened on its first use: ``run --once``
    # and ``status`` never use them.
    @functools.cached_property
    def contact_store(self) -> Store:
        return Store(self.config.db_path)

    @functools.cached_property
    def contact_client(self) -> CentralClient:
        return client_for(self.config, self._credentials, clock_offset=self._offset)

    def follow_enrollment(self, client: CentralClient) -> None:
        """Sign with the credentials in the data folder now. rating-sync starts at boot, before the
        screen or provision.toml enrolls the terminal, and runs on while a technician enrolls it
        again (``provision --force``, the old identity then revoked): credentials read once at
        start left it unenrolled, or signing as a revoked terminal, until the next reboot. Each
        lane calls it for its own client; a file that cannot be used is said and the old kept."""
        path = self.config.terminal.data_dir / FILENAME
        stamp = file_stamp(path)
        if stamp == self._stamps.get(id(client), self._stamp):
            return
        self._stamps[id(client)] = stamp
        try:
            credentials = load_usable(self.config.terminal.data_dir)
        except (CredentialsError, ConfigError) as exc:
            log.error("%s changed but cannot be used (%s); signing as before", path, exc)
            return
        if credentials != client.credentials:
            log.info("credentials changed: now %s", f"terminal {credentials.terminal_id} at window "
                     f"{credentials.window}, server {credentials.server}" if credentials else "not enrolled")
            client.credentials = credentials
            if credentials is not None:
                client.server = credentials.server.rstrip("/")

    def upload(self, until: float | None = None) -> DrainResult:
        """Drain the queue once (new batches until ``until``), recording the outcome for ``status``;
        TransientError propagates."""
        self.follow_enrollment(self.client)
        try:
            result = self.uploader.drain(until)  # ratings first: they are what counts
            events = self.events.drain(until)
        except TransientError as exc:
            self._failed(self.store, self.client, exc)
            raise
        result.events, result.batches = events.delivered, result.batches + events.batches
        result.more = result.more or events.more
        result.bytes_sent += events.bytes_sent
        if result.batches:  # an empty queue asked the server nothing: no news of its health
            log.info("delivered %d ratings and %d events, dead-lettered %d, in %d batches", result.delivered,
                     result.events, result.dead + events.dead, result.batches)
            self._succeeded(self.store, self.client)
        return result

    def upload_step(self) -> float:
        """Upload if due; how long until the next upload. A long backlog goes in slices of
        ``UPLOAD_SLICE_S`` so the loop comes round to feed the watchdog."""
        now = time.monotonic()
        if now >= self.next_upload:
            try:
                more = self.upload(until=now + UPLOAD_SLICE_S).more
                self.backoff.reset()
                self.next_upload = now if more else now + self.config.sync.interval
            except TransientError as exc:
                self.next_upload = now + self.backoff.next_delay(exc.retry_after)
            except StoreError as exc:  # a full disk: nothing was marked; the batch goes again, a duplicate
                log.warning("sync: the database refuses (%s); uploads wait with backoff", exc)
                self.next_upload = now + self.backoff.next_delay()
        return max(0.0, self.next_upload - time.monotonic())

    def contact_step(self) -> float:
        """Heartbeat and content pull, if due; how long until the next is due. The next heartbeat is
        planned from when this one was due, so a slow answer does not push the schedule back."""
        self.follow_enrollment(self.contact_client)
        now = time.monotonic()
        if now >= self.next_heartbeat:
            due = self.next_heartbeat or now
            self.next_heartbeat = max(due + self.config.sync.heartbeat_s * self.rng.uniform(0.9, 1.1), now)
            try:
                report = self.report()
                reply = self.contact_client.heartbeat(report)
                self.invite_results = self.invite_results[len(report.get("invite_results") or []):]  # heard
                if reply.get("content_etag") and reply["content_etag"] != content.current_etag(self.config.content_dir):
                    self.next_content = 0.0
                if isinstance(reply.get("invite"), dict):
                    self.invite_locally(reply["invite"])
                # the bookkeeping last: a database that refuses it (locked, full) used to drop the
                # answer's invitation, which the server, having offered it, never offers again
                self._succeeded(self.contact_store, self.contact_client)
            except TransientError as exc:
                self._failed(self.contact_store, self.contact_client, exc)
        if time.monotonic() >= self.next_content:
            self.next_content = time.monotonic() + self.config.sync.content_s
            self.pull_content()
        return max(0.0, min(self.next_heartbeat, self.next_content) - time.monotonic())

    def invite_locally(self, offer: dict) -> str:
        """A case done at this window, from the heartbeat's answer: hand it to this terminal's own
        invite API, as the window's business system would, and report the outcome with the next
        heartbeat (``invite_results``). Bounded: one short request to this machine."""
        import requests
        fields = {k: offer.get(k) for k in ("case_no", "item_code", "staff_no") if isinstance(offer.get(k), str)}
        outcome = "unavailable"
        listen = self.config.invite.listen
        if listen and fields.get("case_no"):
            from terminal.invite_api import load_or_create_token
            try:  # through a tls.session: no proxy from the environment ever sees the token
                with tls.session() as http:
                    answer = http.post(f"http://{listen}/v1/invite", json=fields, timeout=5, headers={
                        "Authorization": f"Bearer {load_or_create_token(self.config.invite_token_path)}"})
                body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
                error = body.get("error")
                outcome = "invited" if answer.status_code == 201 else (
                    error if error in ("busy", "paused", "staff_not_here") else "unavailable")
            except (requests.RequestException, ValueError) as exc:
                log.warning("could not hand the central server's invitation to the invite API: %s", exc)
        log.info("invitation for case %s from the heartbeat: %s", fields.get("case_no"), outcome)
        self.invite_results = [*self.invite_results, {"case_no": str(fields.get("case_no", ""))[:50],
                                                      "outcome": outcome}][-10:]
        return outcome

    def pull_content(self) -> str | None:
        """Pull content if it changed; return the error (the current content is kept), or None."""
        try:
            if content.pull(self.contact_client, self.config.content_dir,
                            self.config.sync.disk_reserve_mb * 1024 * 1024):
                self.contact_store.set_state(content_version=content.current_etag(self.config.content_dir))
            return None
        except (TransientError, content.ContentPullError) as exc:
            self.next_content = time.monotonic() + 60.0
            log.warning("content pull failed, current content kept: %s", exc)
            self.contact_store.set_state(last_content_error=f"{_now()} {exc}")
            return str(exc)

    def report(self) -> dict:
        """The heartbeat: what a technician or the central server needs to judge this terminal.
        Text in it that others wrote (a device's self-description, an error's message) goes with
        its control characters escaped: the central server refuses a heartbeat holding one whole,
        and the terminal would show offline for a box's board id."""
        store, signer = self.contact_store, self.contact_client.credentials
        counts = store.counts()
        oldest_s = _age_s(store.oldest_pending())
        state = store.state()
        report = {
            "version": terminal.__version__, "versions": versions(store.schema_version),
            "boot_id": self.clock.boot_id(),
            "mono_ms": self.clock.monotonic_ms(), "queue_depth": counts["pending"],
            "events_pending": store.counts("events")["pending"],
            "oldest_pending_s": oldest_s, "dead_letters": counts["dead"],
            "devices": state.get("devices", []),
            "disk_free_bytes": shutil.disk_usage(self.config.terminal.data_dir).free,
            "clock_offset_s": round(self.contact_client.clock_offset, 3), "clock_synced": self.clock.synced(),
            "content_version": content.current_etag(self.config.content_dir),
            "chain": store.chain_head(signer.terminal_id if signer else None),  # this identity's chain only
            "errors": state.get("errors"),  # failures the kiosk or headless terminal survived
            "alerts": store.alerts(5),
            **({"invite_results": list(self.invite_results)} if self.invite_results else {}),
        }
        sent = escape_unclean(report)
        if sent != report:
            log.warning("heartbeat: %s holds control characters; sent escaped", unclean_path(report))
        return sent

    @staticmethod
    def _succeeded(store: Store, client: CentralClient) -> None:
        store.set_state(last_success=_now(), last_error=None, clock_offset_s=client.clock_offset)

    @staticmethod
    def _failed(store: Store, client: CentralClient, exc: TransientError) -> None:
        log.warning("sync failed (%s); %d ratings pending", exc, store.counts()["pending"])
        store.set_state(last_error=f"{_now()} {exc}", clock_offset_s=client.clock_offset)

    def run(self, stop: threading.Event) -> None:
        log.info("rating-sync %s started: database %s, server %s", terminal.__version__,
                 self.config.db_path, self.config.sync.server)
        self.lane_clients = {"upload": self.client, "contact": self.contact_client}
        self.progress = dict.fromkeys(self.lane_clients, time.monotonic())
        contact = threading.Thread(target=self._loop, args=(stop, self.contact_step, "contact"),
                                   name="contact", daemon=True)
        contact.start()
        systemd.notify("READY=1")
        self._loop(stop, self.upload_step, "upload", feeds_watchdog=True)
        contact.join(timeout=self.config.sync.timeout * 3 + 5)  # at most a request or two in flight
        systemd.notify("STOPPING=1")
        log.info("rating-sync stopped")

    def _loop(self, stop: threading.Event, step, lane: str, feeds_watchdog: bool = False) -> None:
        """Run one lane's step until ``stop``, noting its progress. The upload lane feeds the
        watchdog, and only while no lane has stalled: a lane that died or hangs (a thread stuck in
        a call is still alive) makes systemd restart the daemon."""
        while not stop.is_set():
            self.progress[lane] = time.monotonic()
            try:
                delay = step()
            except StoreError as exc:  # a full disk, say: said in one line, not as a bug
                log.warning("sync %s step: the database refuses (%s); trying again in 30 s", lane, exc)
                delay = 30.0
            except Exception:  # a bug, or something no one foresaw: logged, and the lane goes on
                log.exception("sync %s step failed; trying again in 30 s", lane)
                delay = 30.0
            self.progress[lane] = time.monotonic()
            if feeds_watchdog:
                stalled = self.stalled()
                if stalled:
                    log.error("sync lane %s shows no progress: the watchdog is no longer fed", ", ".join(stalled))
                else:
                    counts = self.store.counts()
                    systemd.notify(f"WATCHDOG=1\nSTATUS={counts['pending']} pending, {counts['dead']} dead letters")
            stop.wait(min(delay, WATCHDOG_FEED_EVERY))

    def stalled(self) -> list[str]:
        """The lanes that have neither gone round their loop nor had a call answered for longer than
        one call may take (its client's deadline, and one last read) and ``STALL_GRACE_S``: each
        call is bounded, so such a lane is stuck where no timeout reaches."""
        now = time.monotonic()
        return [lane for lane, client in self.lane_clients.items()
                if now - max(self.progress.get(lane, now), client.answered_at)
                > client.deadline_s + client.timeout + STALL_GRACE_S]


MAX_AGE_S = 2**31 - 1  # the most the central server keeps (and takes) as a heartbeat's oldest_pending_s


def _age_s(recorded_at: str | None) -> int | None:
    """Seconds since ``recorded_at`` (the oldest pending rating's), within 0..MAX_AGE_S; None if
    there is none or it is no time. A garbled one raised and stopped every heartbeat while that
    rating waited; one from a clock that said 1970 comes past the central server's limit in 2038."""
    try:
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(recorded_at)).total_seconds()
    except (TypeError, ValueError, OverflowError):
        if recorded_at:
            log.error("heartbeat: the oldest pending rating's recorded_at %r is not a time", recorded_at[:40])
        return None
    return min(MAX_AGE_S, max(0, int(age)))


def client_for(config: Config, credentials: Credentials | None, **options) -> CentralClient:
    """The client for this terminal's server, with its TLS trust from the config."""
    return CentralClient(config.sync.server, credentials, timeout=options.pop("timeout", config.sync.timeout),
                         ca_file=config.sync.ca_file, server_key_pin=config.sync.server_key_pin, **options)


def run_forever(config: Config, stop: threading.Event) -> None:
    daemon = SyncDaemon(config)
    try:
        daemon.run(stop)
    finally:
        daemon.close()


def versions(schema: int) -> dict:
    """What runs on this terminal, for the central server's list of terminals (the box's firmware
    travels in ``devices``)."""
    import platform
    release = ""
    try:
        for line in open("/etc/os-release", encoding="utf-8"):
            if line.startswith("PRETTY_NAME="):
                release = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"software": terminal.__version__, "schema": schema, "python": platform.python_version(),
            "os": release or platform.platform(), "machine": platform.machine()}

