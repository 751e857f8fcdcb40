"""Under overload a worker sheds uploads early (503 with a spread Retry-After) and keeps a thread
for heartbeats; a shed batch stays pending on the terminal and is delivered once the server has room."""

import json

import pytest
from django.test import Client

from central.ratings import overload
from central.ratings.models import Rating
from sync.client import TransientError

from conftest import make_rating, payloads
from test_central_hardening import signed_post

pytestmark = [pytest.mark.central, pytest.mark.django_db]


@pytest.fixture
def all_slots_taken():
    """Every upload slot of this process held, as by uploads still running on the other threads."""
    for _ in range(overload.UPLOAD_SLOTS):
        assert overload._slots.acquire(blocking=False)
    yield
    for _ in range(overload.UPLOAD_SLOTS):
        overload._slots.release()


def batch(hall, n=3):
    return json.dumps({"ratings": [make_rating(terminal_id=hall.terminal_id).to_wire() for _ in range(n)]}).encode()


def test_a_busy_worker_answers_uploads_503_with_a_spread_retry_after(hall, all_slots_taken):
    client = Client()
    waits = set()
    for _ in range(40):
        reply = signed_post(client, hall, "/api/v1/ratings", batch(hall))
        assert reply.status_code == 503 and reply.json()["error"] == "busy"
        waits.add(int(reply["Retry-After"]))
    assert waits <= set(range(overload.RETRY_AFTER_S[0], overload.RETRY_AFTER_S[1] + 1)) and len(waits) > 3
    assert Rating.objects.count() == 0
    heartbeat = signed_post(client, hall, "/api/v1/heartbeat", json.dumps({"version": "t"}).encode())
    assert heartbeat.status_code == 200  # the thread kept free serves the rest of the API


def test_the_slots_come_back_and_the_batch_is_taken(hall, all_slots_taken):
    body = batch(hall)
    assert signed_post(Client(), hall, "/api/v1/ratings", body).status_code == 503
    overload._slots.release()  # one upload has finished
    try:
        reply = signed_post(Client(), hall, "/api/v1/ratings", body)
        assert reply.status_code == 200 and [a["status"] for a in reply.json()["results"]] == ["accepted"] * 3
    finally:
        assert overload._slots.acquire(blocking=False)
    assert Rating.objects.count() == 3


def test_the_terminal_reads_the_shed_answer_as_wait_and_send_again(hall, all_slots_taken, live_server):
    """Through the real client: a TransientError that carries the server's Retry-After."""
    from sync.client import CentralClient
    from terminal.credentials import Credentials
    creds = Credentials(terminal_id=hall.terminal_id, secret=hall.secret, server=live_server.url, window="W01")
    client = CentralClient(live_server.url, creds)
    with pytest.raises(TransientError) as refused:
        client.upload(payloads(make_rating(terminal_id=hall.terminal_id).to_wire()), {"boot_id": "b", "mono_ms": 1})
    assert refused.value.status == 503 and 2 <= refused.value.retry_after <= 10
