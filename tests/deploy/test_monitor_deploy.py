"""The deploy files run a monitor: uchast-monitor@.service verifies, and its ExecStart with the
example environment (pointed at a real served log) follows the log, serves its metrics and keeps
its state file where the unit's state directory is."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from tests.api.servers import free_port
from tests.deploy.test_dead_on_arrival import environment_file, exec_start
from tests.deploy.tools import DEPLOY, VENV_BIN, require_tool
from tests.factories import ELECTION, Keys
from tests.tally.audit.served_log import BASE, DEFINED, cast, prepared, served


def test_systemd_monitor_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the template as an instance, the executable where an
    install puts it (here: the virtualenv)."""
    analyze = require_tool("systemd-analyze")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uchast").symlink_to(VENV_BIN / "uchast")
    text = (DEPLOY / "systemd" / "uchast-monitor@.service").read_text()
    unit = tmp_path / "uchast-monitor@zhytomyr-2018.service"
    unit.write_text(text.replace("/opt/uchast/bin/", f"{bin_dir}/"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_systemd_monitor_unit_follows_the_log(sqlite_url: str, tmp_path: Path) -> None:
    """The unit's command, with the example's options (policy left out, metrics port moved
    here): it passes the served checkpoint, says so, serves the metrics and writes the state
    file under STATE_DIRECTORY, named after the instance."""
    keys = Keys()
    await prepared(sqlite_url, keys, tmp_path)
    env = environment_file(DEPLOY / "systemd" / "monitor.env.example")
    assert env["UCHAST_MONITOR_URL"].endswith("/log/")
    assert "--metrics-port" in env["UCHAST_MONITOR_ARGS"]
    port = free_port()
    with served(sqlite_url, tmp_path) as base:
        await cast(base, keys, range(2))
        env["UCHAST_MONITOR_URL"] = f"{base}{BASE}/log/"
        env["UCHAST_LOG_VKEY"] = keys.log.verifier.vkey
        env["UCHAST_MONITOR_ARGS"] = f"--interval 0.2 --metrics-port {port}"
        env["STATE_DIRECTORY"] = str(tmp_path)
        command = exec_start("uchast-monitor@.service", {"i": ELECTION}, env)
        assert command[:2] == ["/opt/uchast/bin/uchast", "monitor"]
        command[0] = str(VENV_BIN / "uchast")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith(f"checkpoint {DEFINED + 2} "), line
            deadline = time.monotonic() + 10
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
                        shown = r.read().decode()
                    if f"uchast_monitor_checkpoint_size {DEFINED + 2}.0" in shown:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "no metrics"
                time.sleep(0.1)
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0
    assert (tmp_path / f"{ELECTION}.json").exists()
