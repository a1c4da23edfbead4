"""eventsourcing's own DCB recorder suite, and a differential state machine against its
in-memory recorder, both run on every store through the synchronous adapter."""

from __future__ import annotations

import tempfile
import uuid

from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBQueryItem,
)
from eventsourcing.dcb.popo import InMemoryDCBRecorder
from eventsourcing.dcb.tests import DCBRecorderTestCase
from eventsourcing.persistence import IntegrityError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ledger import merkle
from ledger.dcb import LedgerDCBRecorder
from ledger.keys import SignerKey
from ledger.store import open_store
from tests.conftest import create_pg_database, drop_pg_database, require_postgres


class TestDCBRecorderOnSQLite(DCBRecorderTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.recorder = LedgerDCBRecorder(open_store(f"sqlite:///{self.tmp.name}/dcb.db"))

    def tearDown(self) -> None:
        self.recorder.close()
        self.tmp.cleanup()

    def test_append_read(self) -> None:
        """eventsourcing's append/read/condition cases hold on SQLite."""
        self._test_append_read(self.recorder)

    def test_append_subscribe(self) -> None:
        """eventsourcing's subscription case holds on SQLite."""
        self._test_append_subscribe(self.recorder)


class TestDCBRecorderOnPostgres(DCBRecorderTestCase):
    def setUp(self) -> None:
        require_postgres()
        self.url = create_pg_database()
        self.recorder = LedgerDCBRecorder(open_store(self.url))

    def tearDown(self) -> None:
        self.recorder.close()
        drop_pg_database(self.url)

    def test_append_read(self) -> None:
        """eventsourcing's append/read/condition cases hold on PostgreSQL."""
        self._test_append_read(self.recorder)

    def test_append_subscribe(self) -> None:
        """eventsourcing's subscription case holds on PostgreSQL."""
        self._test_append_subscribe(self.recorder)


TYPES = ["ballot", "paper-ballot", "void"]
TAGS = ["voter:a", "voter:b", "voter:c", "project:L01", "project:S02"]

events_st = st.lists(
    st.builds(
        DCBEvent,
        type=st.sampled_from(TYPES),
        data=st.binary(max_size=8),
        tags=st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    ),
    min_size=1,
    max_size=3,
)
query_st = st.builds(
    DCBQuery,
    items=st.lists(
        st.builds(
            DCBQueryItem,
            types=st.lists(st.sampled_from(TYPES), max_size=2, unique=True),
            tags=st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
        ),
        max_size=2,
    ),
)


class LedgerAgainstOracle(RuleBasedStateMachine):
    """Random appends (with conditions) and reads give the same outcome as the in-memory oracle."""

    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.oracle = InMemoryDCBRecorder()
        self.ours: LedgerDCBRecorder | None = None

    @initialize()
    def open_recorder(self) -> None:
        # A fresh log per example in the one database the test opened.
        self.ours = LedgerDCBRecorder(
            open_store(self.url),
            f"log-{uuid.uuid4().hex[:8]}",
            signer=SignerKey.generate("uchast.test/log"),
        )

    def teardown(self) -> None:
        if self.ours is not None:
            self.ours.close()

    @rule(
        events=events_st,
        query=st.none() | query_st,
        after=st.none() | st.integers(min_value=0, max_value=12),
    )
    def append(self, events: list[DCBEvent], query: DCBQuery | None, after: int | None) -> None:
        assert self.ours is not None
        condition = None if query is None else DCBAppendCondition(query, after)
        expected: object
        try:
            expected = self.oracle.append(events, condition)
        except IntegrityError:
            expected = IntegrityError
        try:
            found: object = self.ours.append(events, condition)
        except IntegrityError:
            found = IntegrityError
        assert found == expected

    @rule(
        query=st.none() | query_st,
        after=st.none() | st.integers(min_value=0, max_value=12),
        limit=st.none() | st.integers(min_value=0, max_value=4),
    )
    def read(self, query: DCBQuery | None, after: int | None, limit: int | None) -> None:
        assert self.ours is not None
        expected = self.oracle.read(query, after=after, limit=limit)
        found = self.ours.read(query, after=after, limit=limit)
        assert list(found) == list(expected)
        assert found.head == expected.head

    @invariant()
    def tree_matches_entries(self) -> None:
        """The stored tree's root over all entries equals a reference tree's."""
        if self.ours is None:
            return
        store = self.ours.store
        log_id = self.ours.log_id
        size = self.ours._call(store.size(log_id))
        entries = self.ours._call(store.read(log_id, 0, size))
        ids = merkle.frontier_ids(size)
        nodes = self.ours._call(store.nodes(log_id, ids))
        assert merkle.fold([nodes[i] for i in ids]) == merkle.root_of([e.data for e in entries])


def test_ledger_matches_in_memory_dcb_recorder(store_url: str) -> None:
    """For random operation sequences the ledger and eventsourcing's recorder agree exactly."""
    LedgerAgainstOracle.url = store_url
    run = LedgerAgainstOracle.TestCase
    run.settings = settings(
        max_examples=25,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()
