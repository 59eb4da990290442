"""Calls release the GIL: other Python threads keep running while a large
sync runs on the runtime's own threads."""

import threading
import time

import jit
from conftest import write_seed_app

MEMBERS = 20_000


def test_another_thread_makes_progress_during_a_20000_member_sync(tmp_path):
    sim = jit.sim.start(
        users=MEMBERS, depts=200, dingtalk_orgs=1, dingtalk_users=10, dingtalk_depts=2,
        # Throttling is not what this test is about; the real limit would
        # only make the sync longer.
        wecom_rate_per_minute=0, wecom_rate_per_hour=0,
    )
    try:
        app = jit.App.load(write_seed_app(tmp_path / "big-app", sim))
        corp = app.getElement("corps.MyQywxCorp")

        # A pure-Python, CPU-bound thread: it can only run while nobody
        # holds the GIL. It notes the time every 1 000 iterations.
        stop = threading.Event()
        stamps = []

        def spin():
            count = 0
            while not stop.is_set():
                count += 1
                if count % 1000 == 0:
                    stamps.append(time.monotonic())

        spinner = threading.Thread(target=spin, daemon=True)
        started = time.monotonic()
        spinner.start()
        report = corp.syncCorp()
        ended = time.monotonic()
        stop.set()
        spinner.join()

        assert report["upstreamMembers"] == MEMBERS and report["outcome"] == "applied"
        during = [s for s in stamps if started <= s <= ended]
        took = ended - started
        # It progressed all along: no pause as long as the sync (which is
        # what holding the GIL for the call would cause).
        points = [started] + during + [ended]
        longest_pause = max(b - a for a, b in zip(points, points[1:]))
        print(
            f"sync of {MEMBERS} members: {took:.2f}s; the other thread ran "
            f"{len(during) * 1000} iterations meanwhile, longest pause {longest_pause:.3f}s"
        )
        assert len(during) >= 10, (took, len(during))
        assert longest_pause < took / 2, (took, longest_pause)
        assert len(corp.getLocalCorpData()["userList"]) > MEMBERS * 0.9
    finally:
        sim.stop()


def test_two_threads_call_the_same_app(app):
    """An App and its elements are shared between threads safely."""
    results = {}

    def work(name):
        results[name] = app.getElement(name).getRootDept()["corpFullName"]

    threads = [threading.Thread(target=work, args=(n,)) for n in ("corps.MyQywxCorp", "corps.testNailDivision")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: n for n in results} and len(results) == 2
