"""The Python API around the seeds' methods: loading options, lookups,
selectors, values, aliases, plugins, help."""

import json
import os
import pathlib
import pydoc
import shutil
import subprocess

import pytest

import jit
from conftest import write_json, write_seed_app

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_get_element_define_returns_any_declaration(app):
    define = app.getElementDefine("corps.MyQywxCorp")
    assert define.fullName.value == "corps.MyQywxCorp"
    assert (define["kind"], define["type"], define["meta"]) == ("Instance", "corps.QywxInnerType", "corps.Meta")
    assert define["chain"] == ["corps.MyQywxCorp", "corps.QywxInnerType", "corps.Meta"]
    assert "setUserRole" in [f["name"] for f in define["functionList"]]  # inherited
    assert app.getElementDefine("corps.QywxInnerType")["kind"] == "Type"
    assert app.getElementDefine("corps.Nothing") is None


def test_find_elements_supports_every_selector(app):
    def names(selector):
        return [d["fullName"] for d in app.findElements(selector)]

    assert names("corps.MyQywxCorp") == ["corps.MyQywxCorp"]
    assert names(".corps.QywxInnerType") == ["corps.MyQywxCorp"]
    assert names(".corps.DDInnerType, .corps.QywxInnerType") == ["corps.MyQywxCorp", "corps.testNailDivision"]
    assert "corps.Meta" in names("corps.*")
    assert names("#type=corps.DDInnerType") == ["corps.testNailDivision"]
    assert names("#frontBundleEntry") == ["corps.testNailDivision"]
    assert names("nothing.*") == []


def test_results_are_dicts_with_attribute_access(app):
    corp = app.getElement("corps.MyQywxCorp")
    root = corp.getRootDept()
    assert isinstance(root, dict) and isinstance(root, jit.Row)
    assert root.name.value == root["name"] and f"{root.name}" == root["name"] and root.name == root["name"]
    assert json.loads(json.dumps(root)) == root  # plain JSON all the way down
    local = corp.getLocalCorpData()
    assert isinstance(local["userList"], list) and local.userList.value is local["userList"]
    assert local.corp.corpId == local["corp"]["corpId"]  # nested objects too
    with pytest.raises(AttributeError, match="its fields are"):
        root.nope
    # A result passes back in as an argument (Rows and Fields alike).
    corp.bulkRegister(corp.getThirdCorpData())
    corp.setUserRole(root.leaders[0], [])


def test_snake_case_aliases_and_keyword_arguments(app):
    corp = app.getElement("corps.MyQywxCorp")
    assert corp.get_root_dept() == corp.getRootDept()
    assert corp.sync_corp(dryRun=True)["outcome"] == "dry_run"  # argument names stay the seeds'
    assert corp.call("getLocalCorpData", include_offline=True)["userList"]
    assert corp.get_admin() == corp.getAdmin() and app.get_element("corps.MyQywxCorp").fullName == corp.fullName


def test_an_element_keeps_its_app_alive(app_dir):
    # The App object is gone after this line; the element still finds the
    # app's folder (and so its store), not the current directory.
    corp = jit.App.load(app_dir).getElement("corps.MyQywxCorp")
    corp.initCorp()
    assert corp.getCorpInfo()["store"] == str(app_dir / ".jit" / "org.db")


def test_env_fills_placeholders_and_store_selects_the_database(tmp_path, sim):
    app_dir = write_seed_app(tmp_path / "app", sim)
    config = app_dir / "corps/MyQywxCorp/MyQywxCorp.json"
    settings = json.loads(config.read_text())
    secret, settings["secret"] = settings["secret"], "{{WECOM_SECRET}}"
    config.write_text(json.dumps(settings))
    store = tmp_path / "elsewhere.db"
    app = jit.App.load(app_dir, env={"WECOM_SECRET": secret}, store=str(store))
    corp = app.getElement("corps.MyQywxCorp")
    assert corp.syncCorp()["outcome"] == "applied"
    assert store.exists() and not (app_dir / ".jit" / "org.db").exists()
    # Unset: the element is invalid, and says which file and pointer.
    with pytest.raises(jit.ElementInvalid, match="WECOM_SECRET"):
        jit.App.load(app_dir, env={}).getElement("corps.MyQywxCorp")


def plugin_library(name):
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug"
    lib = target / f"lib{name.replace('-', '_')}.so"
    if not lib.exists():
        subprocess.run(["cargo", "build", "-q", "-p", name], cwd=REPO, check=True)
    return lib


def test_plugins_load_from_python_and_can_be_turned_off(tmp_path):
    app_dir = tmp_path / "hr"
    shutil.copytree(REPO / "examples/plugins/json-file-corp/app", app_dir)
    manifest = json.loads((app_dir / "app.json").read_text())
    manifest["plugins"] = [str(plugin_library("plugin-json-file-corp"))]
    write_json(app_dir / "app.json", manifest)

    app = jit.App.load(app_dir)
    hr = app.getElement("corps.HrCorp")
    assert isinstance(hr, jit.OrgElement) and hr.typeName == "corps.JsonFileType"
    assert hr.syncCorp()["outcome"] == "applied"
    assert hr.getLocalCorpData()["userList"]

    without = jit.App.load(app_dir, plugins=False)
    with pytest.raises(jit.ElementInvalid):
        without.getElement("corps.HrCorp")


def test_help_describes_the_api():
    text = pydoc.render_doc(jit.App, renderer=pydoc.plaintext)
    for words in ("load(", "getElement(", "getElementDefine(", "findElements(", "store", "plugins"):
        assert words in text
    org = pydoc.render_doc(jit.OrgElement, renderer=pydoc.plaintext)
    for method in ("initCorp", "syncCorp", "bulkRegister", "setUserRole", "getLocalCorpData", "authConfig"):
        assert method in org
    # The seeds' argument names and order, as editors and help() show them.
    import inspect

    assert list(inspect.signature(jit.OrgElement.setUserRole).parameters) == ["self", "memberId", "roleIdList"]
    assert list(inspect.signature(jit.OrgElement.bulkRegister).parameters) == ["self", "corpData", "memberList"]


def test_the_wheel_ships_type_stubs_that_match_the_classes():
    import ast
    import inspect

    package = pathlib.Path(jit.__file__).parent
    assert (package / "py.typed").exists() and (package / "_native.pyi").exists()
    stubs = ast.parse((package / "__init__.pyi").read_text())
    stubbed = {
        node.name: {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
        for node in stubs.body
        if isinstance(node, ast.ClassDef)
    }
    for cls in (jit.App, jit.Element, jit.OrgElement):
        public = {
            name
            for name, _ in inspect.getmembers(cls)
            if not name.startswith("_") and name in vars(cls)
        }
        assert public <= stubbed[cls.__name__], public - stubbed[cls.__name__]


def test_simulator_settings_are_checked():
    with pytest.raises(jit.ArgumentError, match="unknown simulator setting `user`; the settings are: port, seed"):
        jit.sim.start(user=10)
    with jit.sim.start(users=5, depts=2, dingtalk_orgs=1) as small:
        assert len(small.dingtalk) == 1 and small.baseUrl.startswith("http://127.0.0.1:")
