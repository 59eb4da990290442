"""Fixtures: one in-process simulator for the session and, per test, a
fresh app folder with the seed documents' two org elements pointing at it.

The seeds' examples assume an org that already exists: in JitAi an org
element runs ``initCorp()`` when it is created. The ``app`` fixture does the
same before handing the app to the test (each test gets its own store, so
examples that offline members or set admins do not affect each other).
"""

import json
import os
from pathlib import Path

import pytest

import jit

#: The simulated company: small, and always the same (fixed seed), so the
#: ids below exist and the examples print the same text on every run. The
#: DingTalk rate limit is off: every test syncs a fresh store, and the
#: examples are not about throttling (the Rust suites are).
SIM_SETTINGS = dict(seed=7, users=40, depts=8, dingtalk_orgs=2, dingtalk_rate_per_second=0)

#: The seeds' placeholder ids → ids of the simulated org. WeCom members are
#: WeCom userids, roles are tag ids; DingTalk members are DingTalk userids.
WECOM_IDS = {
    "user001": "guogang00027",  # active, holds no tag upstream, not an admin
    "user002": "hufang00030",
    "role001": "3",  # tag 安全员
    "role002": "5",  # tag 导师
    "admin001": "hugang00000",
    "admin002": "huangjing00008",
    "admin003": "huangyan00015",
}
DINGTALK_IDS = {
    "member123": "0100000033762",
    "member456": "0100000040169",
}


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")


def write_seed_app(root: Path, sim: "jit.sim.Simulator") -> Path:
    """The app of the seed documents: ``corps/MyQywxCorp`` (WeCom, the flat
    config) and ``corps/testNailDivision`` (DingTalk, e.json and the
    ``authConfig`` config as the seed shows them), with the simulator's
    credentials instead of the documents' placeholders."""
    write_json(root / "app.json", {"appId": "seeds", "title": "The seed documents' app"})
    # WeCom seed: e.json verbatim; MyQywxCorp.json with the simulator's values.
    write_json(
        root / "corps/MyQywxCorp/e.json",
        {"title": "My WeCom Organization", "type": "corps.QywxInnerType"},
    )
    write_json(root / "corps/MyQywxCorp/MyQywxCorp.json", sim.wecomConfig())
    # DingTalk seed: e.json verbatim; testNailDivision.json likewise.
    write_json(
        root / "corps/testNailDivision/e.json",
        {
            "title": "Test DingTalk Organization",
            "type": "corps.DDInnerType",
            "backendBundleEntry": ".",
            "frontBundleEntry": "./testNailDivision.json",
            "fullName": "corps.testNailDivision",
        },
    )
    write_json(root / "corps/testNailDivision/testNailDivision.json", sim.dingtalkConfig(0))
    return root


@pytest.fixture(scope="session")
def sim():
    """The simulator, started in this process."""
    s = jit.sim.start(**SIM_SETTINGS)
    yield s
    s.stop()


@pytest.fixture
def app_dir(tmp_path, sim):
    """A fresh app folder (its store is ``.jit/org.db`` inside it)."""
    return write_seed_app(tmp_path / "my-app", sim)


@pytest.fixture
def app(app_dir):
    """The loaded app, both orgs initialized (as JitAi does on creation)."""
    os.environ.pop("DATABASE_URL", None)  # the app's own SQLite store
    app = jit.App.load(app_dir)
    app.getElement("corps.MyQywxCorp").initCorp()
    app.getElement("corps.testNailDivision").initCorp()
    return app


@pytest.fixture(scope="session", autouse=True)
def placeholder_ids_exist(sim, tmp_path_factory):
    """Guards the id tables above: if the simulator's generator changes,
    say so here instead of failing obscurely in every example."""
    app = jit.App.load(write_seed_app(tmp_path_factory.mktemp("ids"), sim))
    for name, ids in (("corps.MyQywxCorp", WECOM_IDS), ("corps.testNailDivision", DINGTALK_IDS)):
        corp = app.getElement(name)
        corp.syncCorp()
        data = corp.getLocalCorpData()
        members = {u["memberId"] for u in data["userList"]}
        roles = {r["roleId"] for r in data["roleList"]}
        for placeholder, real in ids.items():
            known = roles if placeholder.startswith("role") else members
            assert real in known, f"{placeholder} → {real} is not in the simulated {name}"
