"""Ctrl-C during a long sync cancels it: KeyboardInterrupt comes at once,
the store holds nothing of the cancelled run, and the next sync runs."""

import json
import pathlib
import signal
import subprocess
import sys
import time

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "interrupt_sync.py"


def test_ctrl_c_cancels_a_running_sync_and_writes_nothing():
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = json.loads(proc.stdout.readline())
    assert first == {"stage": "syncing"}
    time.sleep(1.0)  # well inside the read, which takes several seconds
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    interrupted = json.loads(proc.stdout.readline())
    reacted = time.monotonic() - sent
    out, err = proc.communicate(timeout=120)
    lines = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0, err
    assert interrupted["stage"] == "interrupted", (interrupted, err)
    assert reacted < 1.0, reacted  # cancelled at once, not at the end of the sync
    assert lines[0] == {"stage": "store", "users": 0, "depts": 0}  # nothing half-written
    assert lines[1]["stage"] == "resynced" and lines[1]["outcome"] == "applied"
    assert lines[1]["users"] == 2000
