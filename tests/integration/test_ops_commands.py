"""``scheduled-db backup``, ``restore`` and ``recover`` as commands: their output,
their progress on a terminal, and their refusals (one line, nothing half-written)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from scheduled_db.state.backup_format import verify
from scheduled_db.testing.harness import ROOT, NodeProcess, free_port
from tests.integration.test_backup_restore import cli


def _fill(node: NodeProcess, n: int) -> None:
    jobs = [{"id": f"t{i}", "type": "unico", "timestamp": 4102444800} for i in range(n)]
    status, body = node.call("POST", "/jobs/batch", {"jobs": jobs})
    assert status == 200, body


def test_backup_on_a_terminal_shows_its_progress_and_writes_a_whole_file(
    node: NodeProcess, tmp_path: Path
) -> None:
    _fill(node, 500)
    out = tmp_path / "b.backup"
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "scheduled_db", "backup", "--url", node.base, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as proc:
        os.close(follower)
        stdout, _ = proc.communicate(timeout=60)
        shown = b""
        while True:
            try:
                piece = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not piece:
                break
            shown += piece
        os.close(leader)
    assert proc.returncode == 0, shown
    summary = json.loads(stdout)
    text = shown.decode()
    assert "/s" in text and "done" in text, text  # the rate, then the final line
    with open(out, "rb") as f:
        contents = verify(f)
    assert summary["digest"] == contents.header.digest
    assert summary["bytes"] == out.stat().st_size
    assert summary["keys"] == contents.header.keys > 500
    assert not (tmp_path / "b.backup.partial").exists()


def test_backup_refusals_leave_no_file(tmp_path: Path) -> None:
    out = tmp_path / "b.backup"
    unreachable = f"http://127.0.0.1:{free_port()}"
    done = cli("backup", "--url", unreachable, "--out", str(out), "--timeout", "2")
    assert done.returncode == 2 and "connection refused" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
    done = cli("backup", "--out", str(out), "--url", "ftp://x")
    assert done.returncode == 2 and "--url" in done.stderr


def test_backup_needs_an_admin_credential(tmp_path: Path) -> None:
    from scheduled_db.policy.auth import token_digest

    tokens = f"r:{token_digest('read-tok')}:read,a:{token_digest('admin-tok')}:admin"
    node = NodeProcess(tmp_path / "data", API_TOKENS=tokens)
    node.start()
    try:
        out = tmp_path / "b.backup"
        done = cli("backup", "--url", node.base, "--out", str(out), SCHEDULED_DB_TOKEN="read-tok")
        assert done.returncode == 1 and "403" in done.stderr, done.stderr
        assert not out.exists() and not (tmp_path / "b.backup.partial").exists()
        done = cli("backup", "--url", node.base, "--out", str(out), SCHEDULED_DB_TOKEN="admin-tok")
        assert done.returncode == 0, done.stderr
    finally:
        node.stop_if_running()


def test_restore_refuses_a_cut_file_and_bad_arguments(node: NodeProcess, tmp_path: Path) -> None:
    out = tmp_path / "b.backup"
    assert cli("backup", "--url", node.base, "--out", str(out)).returncode == 0
    cut = tmp_path / "cut.backup"
    cut.write_bytes(out.read_bytes()[:-10])
    target = tmp_path / "restored"
    done = cli("restore", str(cut), "--data-dir", str(target), "--node-id", "node-1",
               "--cluster-members", "node-1")  # fmt: skip
    assert done.returncode == 1 and "cut short" in done.stderr, done.stderr
    assert not target.exists()
    done = cli("restore", str(out), "--data-dir", str(target), "--node-id", "node-1",
               "--cluster-members", "node-1,bad id")  # fmt: skip
    assert done.returncode == 2 and "--cluster-members" in done.stderr, done.stderr
    done = cli("restore", str(out), "--data-dir", str(target), "--node-id", "node-9",
               "--cluster-members", "node-1")  # fmt: skip
    assert done.returncode == 1 and "not one of the cluster members" in done.stderr
    done = cli("restore", str(out), "--data-dir", str(target), "--node-id", "node-1",
               "--cluster-members", "node-1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cluster_id"] in done.stderr  # the id joiners need
    # The restored node starts a cluster of its own, holding the backed-up state.
    restored = NodeProcess(target, "node-1")
    node.stop()
    restored.start()
    try:
        status, body = restored.call("GET", "/jobs?limit=1")
        assert status == 200 and body["total"] == 0
    finally:
        restored.stop_if_running()


def test_recover_refuses_the_directory_of_a_running_node(node: NodeProcess) -> None:
    done = cli("recover", "--data-dir", str(node.data_dir), "--force-new-cluster")
    assert done.returncode == 1, done.stderr
    assert "lock" in done.stderr.lower(), done.stderr
    assert node.answers()
    done = cli("recover", "--data-dir", str(node.data_dir.parent / "none"), "--force-new-cluster")
    assert done.returncode == 1 and "not a scheduled-db data directory" in done.stderr
