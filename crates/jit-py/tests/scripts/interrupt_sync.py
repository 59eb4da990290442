"""Run by test_interrupt.py: start a slow sync, get Ctrl-C'd, show what the
store holds afterwards. Prints one JSON line per stage."""

import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jit  # noqa: E402
from conftest import write_seed_app  # noqa: E402


def say(**kw):
    print(json.dumps(kw), flush=True)


# Slow answers (400 ms each, 200 departments) make the read take seconds.
sim = jit.sim.start(users=2000, depts=200, latency_ms=400, dingtalk_orgs=1,
                    wecom_rate_per_minute=0, wecom_rate_per_hour=0)
app = jit.App.load(write_seed_app(pathlib.Path(tempfile.mkdtemp()) / "app", sim))
corp = app.getElement("corps.MyQywxCorp")
say(stage="syncing")
started = time.monotonic()
try:
    corp.syncCorp()
    say(stage="finished", after=round(time.monotonic() - started, 3))  # too late
except KeyboardInterrupt:
    say(stage="interrupted", after=round(time.monotonic() - started, 3))
try:
    data = corp.getLocalCorpData()
    say(stage="store", users=len(data["userList"]), depts=len(data["deptList"]))
except jit.ArgumentError as e:  # the org was never written at all
    assert "not in the store" in str(e), e
    say(stage="store", users=0, depts=0)
sim.setLatencyMs(0)
report = corp.syncCorp()  # the lock was released, the next sync runs
say(stage="resynced", outcome=report["outcome"], users=report["upstreamMembers"])
sim.stop()
