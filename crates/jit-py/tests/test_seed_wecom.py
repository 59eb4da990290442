"""Every code example of the WeCom seed document ("WeCom Self-built Org."),
verbatim, run against the simulator, and what each prints.

Between the ``# --- seed example`` and ``# --- end`` markers the code is the
document's, character for character, except the document's placeholder ids
(``user001``, ``role001``, ``admin001`` ...), which are replaced by ids of
the simulated org (see ``conftest.WECOM_IDS``). ``app`` is the seed app
(``conftest.app``): the document's ``corps/MyQywxCorp`` with the
simulator's credentials in ``MyQywxCorp.json``.
"""

from conftest import WECOM_IDS

import jit

ROOT_NAME = "企业微信模拟公司"  # the simulated corp's root department
ADMINS = ["chenwen00012", "chenyang00013", "gaoping00028"]  # its app admins


def printed(capsys):
    return capsys.readouterr().out


def test_basic_usage_example(app, capsys):
    # --- seed example: Quick Start, "Basic Usage Example"
    # Get WeCom organization instance
    corp = app.getElement("corps.MyQywxCorp")

    # Initialize organizational architecture
    corp.initCorp()

    # Get root department
    root_dept = corp.getRootDept()
    print(f"Root Department: {root_dept.name.value}")

    # Get administrator list
    admin_list = corp.getAdmin()
    print(f"Administrators: {admin_list}")
    # --- end
    assert printed(capsys) == f"Root Department: {ROOT_NAME}\nAdministrators: {ADMINS}\n"


def test_init_corp(app, capsys):
    # --- seed example: initCorp, "Initialize Organizational Architecture"
    corp = app.getElement("corps.MyQywxCorp")
    corp.initCorp()
    # --- end
    assert printed(capsys) == ""
    assert len(corp.getLocalCorpData()["deptList"]) == 8


def test_sync_corp(app, capsys):
    # --- seed example: syncCorp, "Sync Organizational Architecture"
    corp = app.getElement("corps.MyQywxCorp")
    corp.syncCorp()
    # --- end
    assert printed(capsys) == ""
    # The org was synced by the fixture: an unchanged org writes nothing.
    assert corp.syncCorp()["rowsWritten"] == 0


def test_get_third_corp_data(app, capsys):
    # --- seed example: getThirdCorpData, "Get Third-Party Organizational Architecture Data"
    corp = app.getElement("corps.MyQywxCorp")
    corp_data = corp.getThirdCorpData()
    print(f"User Count: {len(corp_data.get('userDict', {}))}")
    # --- end
    assert printed(capsys) == "User Count: 40\n"


def test_bulk_register(app, capsys):
    # --- seed example: bulkRegister, "Batch Register Users"
    corp = app.getElement("corps.MyQywxCorp")
    corp_data = corp.getThirdCorpData()
    corp.bulkRegister(corp_data)
    # --- end
    assert printed(capsys) == ""


def test_get_local_corp_data(app, capsys):
    # --- seed example: getLocalCorpData, "Get Local Organizational Architecture Data"
    corp = app.getElement("corps.MyQywxCorp")
    local_data = corp.getLocalCorpData()
    print(f"Local User Count: {len(local_data['userList'])}")
    print(f"Local Department Count: {len(local_data['deptList'])}")
    # --- end
    members = len([u for u in local_data["userList"] if u["status"] != "offline"])
    assert printed(capsys) == f"Local User Count: {members}\nLocal Department Count: 8\n"


def test_get_root_dept(app, capsys):
    # --- seed example: getRootDept, "Get Root Department"
    corp = app.getElement("corps.MyQywxCorp")
    root_dept = corp.getRootDept()
    print(f"Root Department ID: {root_dept.deptId.value}")
    print(f"Root Department Name: {root_dept.name.value}")
    # --- end
    assert printed(capsys) == f"Root Department ID: 1\nRoot Department Name: {ROOT_NAME}\n"


def test_set_user_role(app, capsys):
    # --- seed example: setUserRole, "Set User Role" (ids replaced)
    corp = app.getElement("corps.MyQywxCorp")
    result = corp.setUserRole(
    memberId="guogang00027",
    roleIdList=["3", "5"]
    )
    print(f"Role Setting Result: {result}")
    # --- end
    assert (WECOM_IDS["user001"], WECOM_IDS["role001"], WECOM_IDS["role002"]) == ("guogang00027", "3", "5")
    rows = [
        {"memberId": "guogang00027", "roleId": "3", "origin": "local"},
        {"memberId": "guogang00027", "roleId": "5", "origin": "local"},
    ]
    assert printed(capsys) == f"Role Setting Result: {rows}\n"
    # Positional, in the seed's argument order, is the same call.
    assert corp.setUserRole("guogang00027", ["3", "5"]) == rows


def test_offline_member(app, capsys):
    # --- seed example: offlineMember, "Set Members as Resigned" (ids replaced)
    corp = app.getElement("corps.MyQywxCorp")
    corp.offlineMember(["guogang00027", "hufang00030"])
    # --- end
    assert printed(capsys) == ""
    status = {u["memberId"]: u["status"] for u in corp.getLocalCorpData(includeOffline=True)["userList"]}
    assert status["guogang00027"] == status["hufang00030"] == "offline"


def test_get_user_signature(app, capsys):
    # --- seed example: getUserSignature, "Get User Signature" (id replaced)
    corp = app.getElement("corps.MyQywxCorp")
    signature_info = corp.getUserSignature("guogang00027")
    print(f"Signature: {signature_info['signature']}")
    # --- end
    assert printed(capsys) == "Signature: None\n"  # none saved yet
    corp.saveUserSignature("guogang00027", "https://example.com/s.png")
    assert corp.getUserSignature("guogang00027")["signature"] == "https://example.com/s.png"


def test_save_user_signature(app, capsys):
    # --- seed example: saveUserSignature, "Save User Signature" (id replaced)
    corp = app.getElement("corps.MyQywxCorp")
    result = corp.saveUserSignature(
    memberId="guogang00027",
    signature="https://example.com/signature.png"
    )
    print(f"Save Result: {result}")
    # --- end
    assert printed(capsys) == f"Save Result: {dict(result)}\n"
    assert corp.getUserSignature("guogang00027").signature.value == "https://example.com/signature.png"


def test_set_admin(app, capsys):
    # --- seed example: setAdmin, "Set Administrators" (ids replaced)
    corp = app.getElement("corps.MyQywxCorp")
    corp.setAdmin(["hugang00000", "huangjing00008"])
    # --- end
    assert printed(capsys) == ""
    assert {"hugang00000", "huangjing00008"} <= set(corp.getAdmin())


def test_get_admin(app, capsys):
    # --- seed example: getAdmin, "Get Administrator List"
    corp = app.getElement("corps.MyQywxCorp")
    admin_list = corp.getAdmin()
    print(f"Administrator List: {admin_list}")
    # --- end
    assert printed(capsys) == f"Administrator List: {ADMINS}\n"


def test_get_corp_info(app, capsys):
    # --- seed example: getCorpInfo, "Get Organizational Architecture Information"
    corp = app.getElement("corps.MyQywxCorp")
    corp_info = corp.getCorpInfo()
    print(f"Organizational Architecture Name: {corp_info['title']}")
    print(f"Full Name: {corp_info['fullName']}")
    # --- end
    assert printed(capsys) == (
        "Organizational Architecture Name: My WeCom Organization\n"
        "Full Name: corps.MyQywxCorp\n"
    )


def test_get_client(app, capsys):
    # --- seed example: getClient, "Get WeCom Client"
    corp = app.getElement("corps.MyQywxCorp")
    client = corp.getClient()
    # Use client to call WeCom API
    # --- end
    assert printed(capsys) == ""
    assert client.platform.value == "wecom"


def test_corp_data_property(app, capsys, sim):
    # --- seed example: corpData, "Access Organizational Architecture Data"
    corp = app.getElement("corps.MyQywxCorp")
    print(f"Organizational Architecture Data: {corp.corpData}")
    # --- end
    out = printed(capsys)
    assert out.startswith("Organizational Architecture Data: {'title': 'My WeCom Organization', ")
    assert "'secret': '******'" in out and sim.wecom["secret"] not in out


def test_title_property(app, capsys):
    # --- seed example: title, "Get Organizational Architecture Title"
    corp = app.getElement("corps.MyQywxCorp")
    print(f"Title: {corp.title}")
    # --- end
    assert printed(capsys) == "Title: My WeCom Organization\n"


def test_full_name_property(app, capsys):
    # --- seed example: fullName, "Get Organizational Architecture Full Name"
    corp = app.getElement("corps.MyQywxCorp")
    print(f"Full Name: {corp.fullName}")
    # --- end
    assert printed(capsys) == "Full Name: corps.MyQywxCorp\n"


def test_corp_full_name_property(app, capsys):
    # --- seed example: corpFullName, "Get Organizational Architecture Full Name Alias"
    corp = app.getElement("corps.MyQywxCorp")
    print(f"Organizational Architecture Full Name: {corp.corpFullName}")
    # --- end
    assert printed(capsys) == "Organizational Architecture Full Name: corps.MyQywxCorp\n"


def test_auth_config_property(app, capsys, sim):
    # --- seed example: authConfig, "Get Authentication Configuration"
    corp = app.getElement("corps.MyQywxCorp")
    print(f"Enterprise ID: {corp.authConfig['corpId']}")
    print(f"Application ID: {corp.authConfig['agentId']}")
    # --- end
    assert printed(capsys) == (
        f"Enterprise ID: {sim.wecom['corpId']}\nApplication ID: {sim.wecom['agentId']}\n"
    )


def test_configure_automatic_sync(app, capsys):
    # --- seed example: Advanced Features, "Configure Automatic Sync"
    # Configure scheduled sync in task template
    corp = app.getElement("corps.MyQywxCorp")

    # Sync organizational architecture every hour
    corp.syncCorp()
    # --- end
    assert printed(capsys) == ""


def test_batch_operation_example(app, capsys):
    # --- seed example: Advanced Features, "Batch Operation Example" (ids replaced)
    corp = app.getElement("corps.MyQywxCorp")

    # Get third-party data
    corp_data = corp.getThirdCorpData()

    # Batch register users
    corp.bulkRegister(corp_data)

    # Batch set administrators
    admin_ids = ["hugang00000", "huangjing00008", "huangyan00015"]
    corp.setAdmin(admin_ids)

    # Batch resignation processing
    offline_ids = ["guogang00027", "hufang00030"]
    corp.offlineMember(offline_ids)
    # --- end
    assert printed(capsys) == ""
    assert set(admin_ids) <= set(corp.getAdmin())
    current = {u["memberId"] for u in corp.getLocalCorpData()["userList"]}
    assert not set(offline_ids) & current
