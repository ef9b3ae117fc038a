"""End to end: the state (sent log, status, idempotency keys) shared between
machines through PostgreSQL (POSTLINE_DATABASE_URL).

Each "machine" is a data directory of its own. They share only the queue, as
machines share SQS: every machine's queue.db is a symbolic link to one file.
Without a database URL each machine keeps its own state.db, and each test
runs that case too, showing the split it fixes.
"""

import json
import os
import time
import unittest

import pg
from harness import PostlineTestCase
from test_api import Server, envelope

FROM = "Billing <billing@example.com>"


class SharedStateTest(PostlineTestCase):
    @classmethod
    def setUpClass(cls):
        why = pg.unavailable()
        if why:
            raise unittest.SkipTest(why)
        cls.pg = pg.PostgresServer()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def setUp(self):
        super().setUp()
        self.api_servers = []
        self.env["POSTLINE_FROM"] = FROM
        self.database_url = self.pg.create_database(f"e2e_{self._testMethodName[:40]}")
        self.shared_queue = os.path.join(self.tmp, "queue", "queue.db")
        os.makedirs(os.path.dirname(self.shared_queue))

    def tearDown(self):
        for s in self.api_servers:
            s.stop()
        super().tearDown()

    def machine(self, name, shared_state):
        """The environment of one machine: its own data directory, the shared queue."""
        data_dir = os.path.join(self.tmp, name, "var")
        os.makedirs(data_dir, exist_ok=True)
        link = os.path.join(data_dir, "queue.db")
        if not os.path.lexists(link):
            os.symlink(self.shared_queue, link)
        env = {"POSTLINE_DATA_DIR": data_dir}
        if shared_state:
            env["POSTLINE_DATABASE_URL"] = self.database_url
        return env

    def api(self, env):
        s = Server(self, "api", env)
        self.api_servers.append(s)
        return s

    def status_at(self, server, envelope_id):
        status, body = server.json("GET", f"/v1/emails/{envelope_id}")
        self.assertEqual(status, 200, body)
        return body

    def check_api_and_worker_on_two_machines(self, shared_state):
        server = self.smtp()
        backend = self.machine("backend", shared_state)
        scheduler = self.machine("scheduler", shared_state)
        api = self.api(backend)
        status, body = api.json("POST", "/v1/emails", envelope(1),
                                headers={"Idempotency-Key": "invoice-2024-0001"})
        self.assertEqual(status, 202, body)
        envelope_id = body["id"]

        self.run_worker(env=scheduler)
        self.assertEqual(len(server.messages()), 1)
        seen_by_backend = self.status_at(api, envelope_id)["state"]

        # A second API instance, on a third machine, gets the same key.
        other_api = self.api(self.machine("backend2", shared_state))
        status, replay = other_api.json("POST", "/v1/emails", envelope(1),
                                        headers={"Idempotency-Key": "invoice-2024-0001"})
        self.assertIn(status, (200, 202), replay)
        self.run_worker(env=scheduler)
        return seen_by_backend, replay["id"] == envelope_id, len(server.messages())

    def test_the_api_sees_what_a_worker_on_another_machine_delivered(self):
        state, replayed, arrived = self.check_api_and_worker_on_two_machines(shared_state=True)
        self.assertEqual(state, "sent")
        self.assertTrue(replayed, "the second API instance did not know the idempotency key")
        self.assertEqual(arrived, 1)

    def test_without_a_database_each_machine_has_its_own_state(self):
        state, replayed, arrived = self.check_api_and_worker_on_two_machines(shared_state=False)
        self.assertEqual(state, "queued")  # the worker's "sent" went to its own state.db
        self.assertFalse(replayed)
        self.assertEqual(arrived, 2)

    def deliver_a_redelivery_on_another_machine(self, shared_state):
        server = self.smtp()
        backend = self.machine("backend", shared_state)
        env_path = self.write("m.json", json.dumps({
            "id": "01JDUPL1CATE0000000000000B", "from": "billing@kokoka.example",
            "to": "alice@example.com", "subject": "Once", "text": "only once"}))
        self.run_postline("send", env_path, env=backend)
        self.run_worker(env=self.machine("worker1", shared_state))
        # The same envelope again (a lost DeleteMessage), received by another
        # machine's worker.
        self.run_postline("send", env_path, env=backend)
        events = self.run_worker(env=self.machine("worker2", shared_state))
        return [e["event"] for e in events if e["event"] in ("sent", "duplicate")], len(
            server.messages())

    def test_a_redelivery_to_another_machines_worker_is_a_duplicate(self):
        events, arrived = self.deliver_a_redelivery_on_another_machine(shared_state=True)
        self.assertEqual(events, ["duplicate"])
        self.assertEqual(arrived, 1)

    def test_without_a_database_another_machine_sends_the_redelivery_again(self):
        events, arrived = self.deliver_a_redelivery_on_another_machine(shared_state=False)
        self.assertEqual(events, ["sent"])
        self.assertEqual(arrived, 2)

    def test_the_tables_are_in_the_database_with_the_schema_version(self):
        env = self.machine("backend", True)
        proc = self.run_postline("send", "--to", "a@example.com", "--subject", "s", "--text", "t",
                                 "--idempotency-key", "k-1", env=env)
        envelope_id = json.loads(proc.stdout)["id"]
        name = self.database_url.rsplit("/", 1)[1]
        self.assertEqual(self.pg.psql(name, "SELECT version FROM postline_schema "
                                            "WHERE component = 'state'"), "1")
        self.assertEqual(self.pg.psql(name, "SELECT envelope_id || ' ' || state FROM "
                                            "postline_email_status"), f"{envelope_id} queued")
        self.assertEqual(self.pg.psql(name, "SELECT envelope_id FROM postline_idempotency_keys "
                                            "WHERE key = 'k-1'"), envelope_id)
        # Nothing of the state went to the machine's own folder.
        self.assertFalse(os.path.exists(os.path.join(env["POSTLINE_DATA_DIR"], "state.db")))

    def test_an_unreachable_database_is_named_without_its_password(self):
        url = "postgresql://postline:hunter2@127.0.0.1:1/postline?connect_timeout=5"
        proc = self.run_postline("worker", "--until-empty", "--wait-time", "1",
                                 env={**self.machine("backend", False),
                                      "POSTLINE_DATABASE_URL": url}, check=False)
        stderr = proc.stderr.decode()
        self.assertEqual(proc.returncode, 69, stderr)  # EX_UNAVAILABLE
        self.assertIn("database_unavailable", stderr)
        self.assertIn("127.0.0.1:1/postline", stderr)
        self.assertNotIn("hunter2", stderr)



class DatabaseUrlConfigTest(PostlineTestCase):
    """Needs no server: runs where PostgreSQL is not installed too."""

    def test_config_check_shows_the_url_without_its_password(self):
        out = self.run_postline("config", "check", env={
            "POSTLINE_DATABASE_URL": "postgresql://app:hunter2@db.internal:5432/postline?sslmode=require"
        }).stdout.decode()
        self.assertIn("POSTLINE_DATABASE_URL=postgresql://app:********@db.internal:5432/postline"
                      "?sslmode=require\n", out)
        self.assertNotIn("hunter2", out)
        bad = self.run_postline("config", "check", env={"POSTLINE_DATABASE_URL": "hots=db password=hunter2"},
                                check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("POSTLINE_DATABASE_URL", bad.stderr.decode() + bad.stdout.decode())
        self.assertNotIn("hunter2", bad.stderr.decode() + bad.stdout.decode())


if __name__ == "__main__":
    unittest.main()
