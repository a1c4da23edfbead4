"""A Patroni cluster on this machine, for the failover trials (``tests/faults/``) and
``bench/voting_day.py --failover``: one etcd, two Patroni nodes each running its own
PostgreSQL 15 (Debian's binaries) in a temporary directory on free ports, a primary and a
synchronous standby (``synchronous_mode_strict``: the primary acknowledges no commit that the
standby has not flushed, and stops acknowledging when there is none). The shared PostgreSQL on
5432 is not touched.

PostgreSQL refuses to run as root, so when the tests run as root Patroni (and the PostgreSQL it
starts) runs as the ``postgres`` user, in directories that user owns."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from bench.loadgen import free_port

PATRONI = shutil.which("patroni") or "/usr/bin/patroni"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
PG_BIN = Path("/usr/lib/postgresql/15/bin")

# Fast enough for a test: Patroni runs its loop every second and a silent leader's key expires
# after TTL seconds, the least Patroni's rule loop_wait + 2 * retry_timeout <= ttl allows (the
# hung-primary trial waits that long for the promotion); deploy/patroni/ uses the
# production-minded defaults.
TTL = 7
LOOP_WAIT = 1
RETRY_TIMEOUT = 3


# The cluster-wide settings Patroni writes to etcd at bootstrap (deploy/patroni/ uses the same
# guarantees, with production timings).
DCS: dict[str, Any] = {
    "ttl": TTL,
    "loop_wait": LOOP_WAIT,
    "retry_timeout": RETRY_TIMEOUT,
    "maximum_lag_on_failover": 0,
    "synchronous_mode": True,
    "synchronous_mode_strict": True,
    # A crashed primary is failed over at once, not restarted in place first.
    "primary_start_timeout": 0,
    "master_start_timeout": 0,
    "postgresql": {
        "use_pg_rewind": True,
        "parameters": {
            "wal_level": "replica",
            "hot_standby": "on",
            "max_wal_senders": 5,
            "max_replication_slots": 5,
            "wal_keep_size": "128MB",
            "synchronous_commit": "on",
            "max_connections": 100,
            "shared_buffers": "32MB",
            "fsync": "off",  # a test machine: crash safety is not the trial (see settings)
            "full_page_writes": "on",
            "wal_log_hints": "on",
        },
    },
}


def problem() -> str | None:
    """Why the cluster cannot run here, if it cannot."""
    for path in (PATRONI, ETCD, str(PG_BIN / "postgres")):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install patroni etcd-server postgresql-15)"
    return None


def _runner() -> tuple[list[str], int | None, int | None]:
    """How to start Patroni: as ourselves, or as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return [], None, None
    user = pwd.getpwnam("postgres")
    prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    return prefix, user.pw_uid, user.pw_gid


def get_json(url: str, timeout: float = 1.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Node:
    """One Patroni node: its PostgreSQL port, REST port, data directory and process."""

    name: str
    pg_port: int
    api_port: int
    dir: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    stopped: list[int] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.pg_port}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def postgres_pids(self) -> list[int]:
        """The postmaster and its children."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return []
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True
        ).stdout.split()
        return [postmaster, *map(int, children)]


class PatroniCluster:
    """etcd and ``nodes`` Patroni nodes (two by default: a primary and its synchronous standby;
    a third is a standby the new primary can take as synchronous at once) under ``root``; see
    the module docstring. ``settings``: PostgreSQL parameters over :data:`DCS`'s (a benchmark
    wants ``fsync`` on, say)."""

    def __init__(
        self, root: Path, settings: dict[str, str] | None = None, *, nodes: int = 2
    ) -> None:
        if nodes < 2:
            raise ValueError("a cluster to fail over needs two nodes at least")
        self.root = root
        self.dcs = copy.deepcopy(DCS)
        self.dcs["postgresql"]["parameters"].update(settings or {})
        self.scope = f"uchast-{uuid.uuid4().hex[:8]}"
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.etcd: subprocess.Popen[bytes] | None = None
        self._etcd_log: IO[bytes] | None = None
        self.prefix, self.uid, self.gid = _runner()
        self.nodes = [self._node(f"pg{k}") for k in range(1, nodes + 1)]

    # Setting up.

    def _own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def _node(self, name: str) -> Node:
        directory = self.root / name
        directory.mkdir(mode=0o700)
        self._own(directory)
        node = Node(name, free_port(), free_port(), directory, directory / "patroni.yml")
        node.config.write_text(json.dumps(self._config(node), indent=1))
        return node

    def _config(self, node: Node) -> dict[str, Any]:
        # JSON is YAML: Patroni reads this file as it is.
        return {
            "scope": self.scope,
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{node.api_port}",
                "connect_address": f"127.0.0.1:{node.api_port}",
            },
            # etcd's v2 API, not etcd3: Debian's Patroni 3.0.2 renews its leader key on etcd3
            # with an unconditional put, so a hung primary that wakes after the failover takes
            # the key back from the promoted standby (seen in these trials); on v2 the renewal
            # is a compare-and-swap on its own name, and the woken node demotes itself.
            "etcd": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": self.dcs,
                "initdb": [{"encoding": "UTF8"}, "no-sync", {"locale": "C.UTF-8"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(PG_BIN),
                "pgpass": str(node.dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(node.dir)},
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
            "tags": {"nofailover": False, "noloadbalance": False},
        }

    def start(self) -> None:
        """etcd, then the first node (it bootstraps and leads), then the others (each clones
        the first); return once one of them is the synchronous standby, streaming."""
        etcd_dir = self.root / "etcd"
        self._etcd_log = open(self.root / "etcd.log", "ab")  # noqa: SIM115
        self.etcd = subprocess.Popen(
            [
                ETCD,
                "--name=etcd1",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=etcd1=http://127.0.0.1:{self.etcd_peer_port}",
                "--heartbeat-interval=100",
                "--election-timeout=1000",
                "--unsafe-no-fsync",
                "--enable-v2=true",
            ],
            stdout=self._etcd_log,
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._etcd_up(), 20, "etcd did not start")
        first, *others = self.nodes
        self.start_node(first)
        self._wait(lambda: self.leader() is first, 60, "the first node did not bootstrap")
        for node in others:
            self.start_node(node)
        self.wait_healthy()
        if others[1:]:
            self._wait(self._all_streaming, 60, "not every standby streams")

    def _all_streaming(self) -> bool:
        members = self.members()
        standbys = [m for m in members if m.get("role") != "leader"]
        return len(members) == len(self.nodes) and all(
            m.get("state") in ("running", "streaming") for m in standbys
        )

    def _etcd_up(self) -> bool:
        try:
            return bool(get_json(f"http://127.0.0.1:{self.etcd_port}/health")["health"])
        except (OSError, ValueError, KeyError):
            return False

    def start_node(self, node: Node) -> None:
        node.log = open(node.dir.parent / f"{node.name}.log", "ab")  # noqa: SIM115
        env = {**os.environ, "HOME": str(node.dir), "PATH": f"{PG_BIN}:{os.environ['PATH']}"}
        node.process = subprocess.Popen(
            [*self.prefix, PATRONI, str(node.config)],
            cwd=node.dir,
            env=env,
            stdout=node.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        """Throw the cluster away: SIGKILL every node and etcd (their data is removed next; a
        clean shutdown took about 5 s of every run's teardown)."""
        for node in self.nodes:
            self.resume(node)
            if node.process is not None:
                _signal(node.process.pid, signal.SIGKILL)
                node.process.wait()
            for pid in node.postgres_pids():  # the postmaster and its children, left behind
                _signal(pid, signal.SIGKILL)
            if node.log is not None:
                node.log.close()
                node.log = None
        if self.etcd is not None:
            self.etcd.kill()
            self.etcd.wait(timeout=10)
        if self._etcd_log is not None:
            self._etcd_log.close()

    # Looking.

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view of the cluster, from whichever node's REST API answers first."""
        for node in self.nodes:
            if node.stopped:
                continue
            try:
                return list(get_json(f"http://127.0.0.1:{node.api_port}/cluster")["members"])
            except (OSError, ValueError, KeyError):
                continue
        return []

    def _by_name(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def leader(self) -> Node | None:
        """The node Patroni names leader, if its PostgreSQL is running."""
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return self._by_name(member["name"])
        return None

    def sync_standby(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "sync_standby" and member.get("state") in (
                "running",
                "streaming",
            ):
                return self._by_name(member["name"])
        return None

    def streaming_sync(self, primary: Node) -> bool:
        """Whether ``primary`` has a synchronous standby streaming to it right now."""
        try:
            with psycopg.connect(self.admin_url(primary), connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication"
                    " WHERE sync_state = 'sync' AND state = 'streaming'"
                ).fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] > 0

    def writable(self, node: Node) -> bool:
        """Whether ``node``'s PostgreSQL answers as a primary (out of recovery)."""
        try:
            with psycopg.connect(self.admin_url(node), connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] is False

    def wait_promoted(self, node: Node, timeout: float = 60) -> None:
        """Wait until Patroni names ``node`` leader and its PostgreSQL is out of recovery."""
        self._wait(lambda: self.leader() is node and self.writable(node), timeout, "no promotion")

    def wait_healthy(self, timeout: float = 60) -> tuple[Node, Node]:
        """Wait for a leader with a streaming synchronous standby; return both."""

        def healthy() -> bool:
            leader, standby = self.leader(), self.sync_standby()
            return leader is not None and standby is not None and self.streaming_sync(leader)

        self._wait(healthy, timeout, "the cluster did not get healthy")
        leader, standby = self.leader(), self.sync_standby()
        assert leader is not None and standby is not None
        return leader, standby

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}; logs in {self.root}:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        out = []
        for name in ("etcd", *(n.name for n in self.nodes)):
            path = self.root / f"{name}.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(out)

    # URLs.

    def admin_url(self, node: Node, database: str = "postgres") -> str:
        return f"postgresql://postgres@{node.host}/{database}"

    def url(self, database: str) -> str:
        """The application's URL: every node, the read-write one wanted."""
        hosts = ",".join(n.host for n in self.nodes)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def create_database(self) -> str:
        """A fresh database on the current primary; the application URL to it."""
        leader, _ = self.wait_healthy()
        name = f"uchast_ha_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url(leader), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # Faults.

    def kill_postmaster(self, node: Node) -> int:
        """SIGKILL the node's postmaster (Patroni lives on); return its pid."""
        pid = node.postmaster_pid()
        assert pid is not None, f"{node.name} has no postmaster"
        _signal(pid, signal.SIGKILL)
        return pid

    def hang(self, node: Node) -> None:
        """SIGSTOP the whole node, Patroni and every PostgreSQL process: a hung machine. Its
        sockets stay open; nothing answers on them."""
        assert node.process is not None
        pids = [node.process.pid, *node.postgres_pids()]
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        node.stopped = pids

    def resume(self, node: Node) -> None:
        for pid in node.stopped:
            _signal(pid, signal.SIGCONT)
        node.stopped = []

    def kill_node(self, node: Node) -> None:
        """SIGKILL the node's Patroni and PostgreSQL: the machine is gone."""
        assert node.process is not None
        pids = node.postgres_pids()
        _signal(node.process.pid, signal.SIGKILL)
        node.process.wait()
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        if node.log is not None:
            node.log.close()
            node.log = None
        # Gone for good before the node may be started again on the same data directory.
        self._wait(lambda: not any(_alive(p) for p in pids), 10, "postgres did not die")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of Patroni, killed, counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def cluster_root() -> Path:
    """A temporary directory the ``postgres`` user can reach (pytest's tmp is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="uchast-patroni-"))
    root.chmod(0o755)
    return root
