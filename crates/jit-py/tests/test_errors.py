"""A runtime error is a Python exception of one class per kind, carrying
the message the CLI prints after ``error:``; secrets never show."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import threading
import time

import pytest

import jit
from conftest import write_seed_app

REPO = pathlib.Path(__file__).resolve().parents[3]


def jit_binary():
    """The CLI built from this checkout (CI builds it before pytest runs)."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "jit"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "jit-cli"], cwd=REPO, check=True)
    return str(binary)


def cli_error(app_dir, name, method, args="null"):
    """What `jit call` prints after `error: `."""
    run = subprocess.run(
        [jit_binary(), "call", name, method, "--app", str(app_dir), "--args", args],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode != 0, run.stdout
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), run.stderr
    return last[len("error: "):]


def same_message(a, b):
    """Equal but for run numbers (each attempt is recorded as a new run)."""
    return re.sub(r"run \d+", "run N", a) == re.sub(r"run \d+", "run N", b)


def test_the_exception_classes():
    assert issubclass(jit.ElementNotFound, jit.JitError)
    assert issubclass(jit.ArgumentError, ValueError)  # and JitError
    assert issubclass(jit.MethodNotFound, AttributeError)  # so hasattr() works
    for kind in ("SyncBusy", "SyncRefused", "PlatformError", "InternalError", "LoadError"):
        assert issubclass(getattr(jit, kind), jit.JitError)


def test_unknown_element_is_element_not_found_with_the_clis_message(app, app_dir):
    with pytest.raises(jit.ElementNotFound) as e:
        app.getElement("corps.MyQywxCrop")
    assert str(e.value) == (
        "no element named `corps.MyQywxCrop`; did you mean corps.MyQywxCorp, corps.QywxInnerType?"
    )
    assert str(e.value) == cli_error(app_dir, "corps.MyQywxCrop", "getAdmin")


def test_a_type_is_not_an_instance(app):
    with pytest.raises(jit.ElementInvalid, match="is a Type"):
        app.getElement("corps.QywxInnerType")
    assert app.getElementDefine("corps.QywxInnerType")["kind"] == "Type"


def test_bad_arguments_are_argument_errors_with_the_clis_message(app, app_dir):
    corp = app.getElement("corps.MyQywxCorp")
    with pytest.raises(jit.ArgumentError) as e:
        corp.setUserRole("guogang00027", "3")
    assert str(e.value) == (
        'corps.MyQywxCorp.setUserRole: argument `roleIdList` must be a list (JitList), got "3"'
    )
    assert str(e.value) == cli_error(app_dir, "corps.MyQywxCorp", "setUserRole", '["guogang00027", "3"]')
    # Values the implementation rejects are ArgumentErrors too.
    with pytest.raises(jit.ArgumentError, match="no-such-role"):
        corp.setUserRole("guogang00027", ["no-such-role"])
    with pytest.raises(jit.ArgumentError):
        corp.saveUserSignature("guogang00027", "ftp://not-http")


def test_unknown_methods(app):
    corp = app.getElement("corps.MyQywxCorp")
    with pytest.raises(jit.MethodNotFound, match="its methods are: initCorp, syncCorp"):
        corp.call("noSuchMethod")
    assert not hasattr(corp, "noSuchMethod")
    # The DingTalk seed has no setUserRole, nor does the Type.
    with pytest.raises(jit.MethodNotFound):
        app.getElement("corps.testNailDivision").setUserRole("x", [])


def test_a_missing_app_folder_is_a_load_error(tmp_path):
    with pytest.raises(jit.LoadError, match="does not exist"):
        jit.App.load(tmp_path / "nowhere")


def test_a_wrong_secret_is_a_platform_error_with_errcode_and_no_secret(app_dir, sim):
    config = app_dir / "corps/MyQywxCorp/MyQywxCorp.json"
    settings = json.loads(config.read_text())
    settings["secret"] = "not-the-secret-" + settings["secret"][:4]
    config.write_text(json.dumps(settings))
    app = jit.App.load(app_dir)
    with pytest.raises(jit.PlatformError) as e:
        app.getElement("corps.MyQywxCorp").syncCorp()
    assert e.value.errcode == "40001"
    assert "errcode 40001" in str(e.value) and "nothing was changed" in str(e.value)
    assert "not-the-secret" not in str(e.value) + repr(e.value)
    assert same_message(str(e.value), cli_error(app_dir, "corps.MyQywxCorp", "syncCorp"))


def test_a_mass_offline_is_refused_until_forced(tmp_path):
    sim = jit.sim.start(users=40, depts=8, dingtalk_orgs=1)  # its own: changed below
    try:
        app_dir = write_seed_app(tmp_path / "app", sim)
        corp = jit.App.load(app_dir).getElement("corps.MyQywxCorp")
        corp.initCorp()
        # Half the company leaves at once upstream: the guard refuses.
        members = [u["memberId"] for u in corp.getLocalCorpData()["userList"]]
        for userid in members[:20]:
            sim.mutate("wecom", op="removeMember", userid=userid)
        with pytest.raises(jit.SyncRefused) as e:
            corp.syncCorp()
        assert "maxOfflineRatio" in str(e.value) or "offline" in str(e.value)
        assert same_message(str(e.value), cli_error(app_dir, "corps.MyQywxCorp", "syncCorp"))
        # After looking, force applies it.
        report = corp.syncCorp(force=True)
        assert report["outcome"] == "applied" and report["counts"]["offlined"] == 20
    finally:
        sim.stop()


def test_a_second_sync_of_the_same_org_is_busy(tmp_path):
    # Slow answers: the first sync reads for about two seconds.
    sim = jit.sim.start(users=200, depts=40, latency_ms=400, dingtalk_orgs=1)
    try:
        app = jit.App.load(write_seed_app(tmp_path / "app", sim))
        corp = app.getElement("corps.MyQywxCorp")
        first = threading.Thread(target=corp.syncCorp)
        first.start()
        time.sleep(0.5)  # the first sync holds the org's lock, reading
        with pytest.raises(jit.SyncBusy, match="already running"):
            corp.syncCorp()
        first.join()
    finally:
        sim.stop()


def test_secrets_stay_masked_in_reprs(app, sim):
    corp = app.getElement("corps.MyQywxCorp")
    secret = sim.wecom["secret"]
    shown = " ".join(
        [repr(app), repr(corp), repr(corp.authConfig), str(corp.corpData), repr(sim), str(sim.info),
         repr(sim.wecom), str(sim.dingtalk)]
    )
    assert secret not in shown and sim.dingtalk[0]["appSecret"] not in shown
    assert corp.authConfig["secret"] == "******"
    # The real values are there for whoever asks for them by name.
    assert sim.wecom["secret"] == secret and sim.wecom.secret.value == secret
