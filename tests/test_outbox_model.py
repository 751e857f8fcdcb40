"""Model-based test of the outbox: hypothesis drives random steps against the real thing and a
model of what must be true.

The real thing: a terminal database (``Store``), the ``Uploader`` and ``CentralClient``, talking
through ``FaultProxy`` to the real central server. The steps: record a rating, send a batch with
the network behaving or failing in one of several ways (some after the server has committed),
have the server already hold a pending rating's id with other content, and restart the daemon
(a new process opening the same database), or crash inside the transaction that saves the
server's acknowledgements. After every step:

- delivered + pending + dead letters = recorded, each in the state the model says;
- every rating the terminal calls delivered is on the server, once, identical to what was recorded;
- the server never holds a rating id twice, nor anything the terminal did not record.
"""

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test

from sync.client import CentralClient, TransientError
from sync.outbox import DrainResult, Uploader
from terminal.core.levels import Level
from terminal.core.rating import Rating
from terminal.store import Store

from conftest import make_rating, payloads
from fault_proxy import FaultProxy

class Crashed(Exception):
    pass


#: what the proxy does to one send; True where the server has committed the batch before it fails
SEND_FAULTS = {"pass": True, "reset_before": False, "reset_after": True, "error_after": True,
               "truncated": True, "portal": False, "unavailable": False}


def test_outbox_against_its_model(central, enrolled, tmp_path_factory):
    fault = {"now": "pass"}
    proxy = FaultProxy(central.url, lambda method, path: fault["now"])
    direct = central.client(enrolled)

    class Outbox(RuleBasedStateMachine):
        @initialize(batch_size=st.integers(1, 4))
        def start(self, batch_size):
            self.path = tmp_path_factory.mktemp("outbox") / "terminal.db"
            self.batch_size = batch_size
            self.open()
            self.recorded: dict[str, str] = {}  # id -> digest, in order of recording
            self.state: dict[str, str] = {}  # id -> pending | delivered | dead, as the model says
            self.on_server: dict[str, str] = {}  # id -> digest the server holds
            self.conflicted: set[str] = set()

        def open(self):
            self.store = Store(self.path)
            self.uploader = Uploader(self.store, CentralClient(proxy.url, enrolled, timeout=5),
                                     batch_size=self.batch_size)

        def teardown(self):
            if hasattr(self, "store"):
                self.uploader.client.close()
                self.store.close()

        def pending(self) -> list[str]:
            return [i for i in self.recorded if self.state[i] == "pending"]

        @rule(level=st.sampled_from(list(Level)))
        def record(self, level):
            rating = self.store.record(make_rating(level, terminal_id=enrolled.terminal_id))
            self.recorded[rating.id] = rating.digest()
            self.state[rating.id] = "pending"

        @rule(how=st.sampled_from(sorted(SEND_FAULTS)))
        def send(self, how):
            batch = self.pending()[: self.batch_size]
            fault["now"] = how
            try:
                sent = self.uploader.send_one_batch(DrainResult())
                assert how == "pass" or not batch, f"{how} was taken for an acknowledgement"
            except TransientError:
                assert how != "pass"
                sent = len(batch)
            finally:
                fault["now"] = "pass"
            assert sent == len(batch)
            if SEND_FAULTS[how]:  # the server committed: new ids stored, conflicting ones refused
                for i in batch:
                    self.on_server.setdefault(i, self.recorded[i])
            if how == "pass":
                for i in batch:
                    self.state[i] = "dead" if i in self.conflicted else "delivered"

        @precondition(lambda self: any(i not in self.on_server for i in self.pending()))
        @rule(data=st.data())
        def server_already_holds_the_id_with_other_content(self, data):
            rating_id = data.draw(st.sampled_from([i for i in self.pending() if i not in self.on_server]))
            wire = json.loads(self.store.get(rating_id)["payload"])
            other = {**wire, "level": 1 if wire["level"] != 1 else 5}
            acks, _ = direct.upload(payloads(other), {})
            assert acks[rating_id].status == "accepted"
            self.on_server[rating_id] = Rating.from_wire(other).digest()
            self.conflicted.add(rating_id)

        @rule()
        def crash_while_saving_the_acknowledgements(self):
            """The server answered, and the process dies inside the transaction that marks the
            batch delivered (power cut): SQLite rolls it back, so the batch is pending again."""
            batch = self.pending()[: self.batch_size]

            def die(ids, table="ratings"):
                self.store.db.execute("BEGIN")
                self.store.db.conn.executemany("UPDATE ratings SET state = 'delivered' WHERE id = ?",
                                               [(i,) for i in ids])
                self.store.db.conn.close()  # no COMMIT: what a killed process leaves behind
                raise Crashed

            self.store.mark_delivered = die
            try:
                self.uploader.send_one_batch(DrainResult())
            except Crashed:
                assert batch
            except TransientError:
                raise AssertionError("the server's acknowledgement was lost")
            for i in batch:
                self.on_server.setdefault(i, self.recorded[i])
            self.restart()

        @rule()
        def restart(self):
            """The daemon dies and a new one opens the same database."""
            self.teardown()
            self.open()

        @invariant()
        def terminal_matches_the_model(self):
            if not hasattr(self, "store"):
                return
            counts = self.store.counts()
            assert counts["pending"] + counts["delivered"] + counts["dead"] == len(self.recorded)
            rows = dict(self.store.db.execute("SELECT id, state FROM ratings").fetchall())
            assert rows == self.state

        @invariant()
        def server_holds_each_rating_once_and_as_recorded(self):
            if not hasattr(self, "store") or not self.recorded:
                return
            ids = list(self.recorded)
            marks = ",".join("?" * len(ids))
            held = central.query(f"SELECT rating_id, digest FROM ratings_rating WHERE rating_id IN ({marks})", ids)
            assert len(held) == len(set(i for i, _ in held))  # never twice
            assert dict(held) == self.on_server  # nothing lost, nothing invented
            for i, state in self.state.items():
                if state == "delivered":
                    assert dict(held)[i] == self.recorded[i]  # delivered means stored, as recorded

    try:
        run_state_machine_as_test(Outbox, settings=settings(
            max_examples=25, stateful_step_count=30, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
    finally:
        proxy.close()
        direct.close()

