"""Every code example of the DingTalk seed document ("DingTalk Self-built
Org."), verbatim, run against the simulator, and what each prints.

Between the ``# --- seed example`` and ``# --- end`` markers the code is the
document's, except the placeholder ids ``member123``/``member456``, replaced
by ids of the simulated org (``conftest.DINGTALK_IDS``), and the
indentation of the ``try:`` block, which the published page lost (Python
needs it). ``app`` is the seed app: the document's ``corps/testNailDivision``
(e.json as shown, ``testNailDivision.json`` with the simulator's credentials).
"""

from conftest import DINGTALK_IDS

ROOT_NAME = "钉钉模拟公司1"  # the simulated org's root department
ADMINS = ["0100000003353", "0100000017473", "0100000021619"]  # its admins
MEMBER123, MEMBER456 = "0100000033762", "0100000040169"


def printed(capsys):
    return capsys.readouterr().out


def test_ids_are_the_simulated_orgs():
    assert (DINGTALK_IDS["member123"], DINGTALK_IDS["member456"]) == (MEMBER123, MEMBER456)


def test_usage_example(app, capsys):
    # --- seed example: Quick Start, "Usage Example"
    # Get DingTalk Self-built Org. instance
    nail_corp = app.getElement("corps.testNailDivision")
    # Sync organizational architecture
    nail_corp.syncCorp()
    # Get root department
    root_dept = nail_corp.getRootDept()
    print(f"Root Department: {root_dept.name}")
    # --- end
    assert printed(capsys) == f"Root Department: {ROOT_NAME}\n"


def test_bulk_register(app, capsys):
    # --- seed example: bulkRegister
    nail_corp = app.getElement("corps.testNailDivision")
    # Get organization data
    corp_data = nail_corp.getThirdCorpData()
    # Batch register all members
    nail_corp.bulkRegister(corp_data)
    print("Member registration completed")
    # --- end
    assert printed(capsys) == "Member registration completed\n"
    # memberList (DingTalk) registers only the listed members.
    nail_corp.bulkRegister(corp_data, [MEMBER123])
    nail_corp.bulkRegister(corp_data, memberList=[MEMBER123, MEMBER456])


def test_get_admin(app, capsys):
    # --- seed example: getAdmin
    nail_corp = app.getElement("corps.testNailDivision")
    admin_ids = nail_corp.getAdmin()
    print(f"Administrator ID list: {admin_ids}")
    # --- end
    assert printed(capsys) == f"Administrator ID list: {ADMINS}\n"


def test_get_client(app, capsys):
    # --- seed example: getClient
    nail_corp = app.getElement("corps.testNailDivision")
    client = nail_corp.getClient()
    # Client is used for internal API calls, usually no need to use directly
    # --- end
    assert printed(capsys) == ""
    assert client["platform"] == "dingtalk"


def test_get_corp_info(app, capsys):
    # --- seed example: getCorpInfo
    nail_corp = app.getElement("corps.testNailDivision")
    corp_info = nail_corp.getCorpInfo()
    print(f"Organization information: {corp_info}")
    # --- end
    out = printed(capsys)
    assert out == f"Organization information: {dict(corp_info)}\n"
    assert "'title': 'Test DingTalk Organization'" in out
    assert "'fullName': 'corps.testNailDivision'" in out


def test_get_local_corp_data(app, capsys):
    # --- seed example: getLocalCorpData
    nail_corp = app.getElement("corps.testNailDivision")
    local_data = nail_corp.getLocalCorpData()
    # Access different types of data
    print(f"User list: {local_data['userList']}")
    print(f"Department list: {local_data['deptList']}")
    print(f"Role list: {local_data['roleList']}")
    # --- end
    lines = printed(capsys).splitlines()
    assert [line.split(":")[0] for line in lines] == ["User list", "Department list", "Role list"]
    assert f"'memberId': '{MEMBER123}'" in lines[0]
    assert f"'name': '{ROOT_NAME}'" in lines[1]
    assert "'name': '主管'" in lines[2]


def test_get_root_dept(app, capsys):
    # --- seed example: getRootDept
    nail_corp = app.getElement("corps.testNailDivision")
    root_dept = nail_corp.getRootDept()
    # Access root department attributes
    print(f"Department ID: {root_dept.deptId}")
    print(f"Department name: {root_dept.name}")
    print(f"Organization name: {root_dept.corpFullName}")
    # --- end
    assert printed(capsys) == (
        "Department ID: 1\n"
        f"Department name: {ROOT_NAME}\n"
        "Organization name: corps.testNailDivision\n"
    )


def test_get_third_corp_data(app, capsys, sim):
    # --- seed example: getThirdCorpData
    nail_corp = app.getElement("corps.testNailDivision")
    corp_data = nail_corp.getThirdCorpData()
    # Access organization data attributes
    print(f"Enterprise ID: {corp_data.corpId}")
    print(f"User dictionary: {corp_data.userDict}")
    print(f"Department data: {corp_data.deptDict}")
    # --- end
    lines = printed(capsys).splitlines()
    assert lines[0] == f"Enterprise ID: {sim.dingtalk[0]['corpId']}"
    assert lines[1] == f"User dictionary: {dict(corp_data['userDict'])}"
    assert lines[2] == f"Department data: {dict(corp_data['deptDict'])}"
    assert len(corp_data["userDict"]) == 40 and len(corp_data["deptDict"]) == 8


def test_get_user_signature(app, capsys):
    # --- seed example: getUserSignature (id replaced)
    nail_corp = app.getElement("corps.testNailDivision")
    signature_info = nail_corp.getUserSignature("0100000033762")
    print(f"User signature: {signature_info['signature']}")
    # --- end
    assert printed(capsys) == "User signature: None\n"  # none saved yet


def test_init_corp(app, capsys):
    # --- seed example: initCorp
    nail_corp = app.getElement("corps.testNailDivision")
    # Initialization method is automatically called when element is created, usually no need to call manually
    nail_corp.initCorp()
    # --- end
    assert printed(capsys) == ""


def test_offline_member(app, capsys):
    # --- seed example: offlineMember (ids replaced)
    nail_corp = app.getElement("corps.testNailDivision")
    nail_corp.offlineMember(["0100000033762", "0100000040169"])
    print("Member offline operation completed")
    # --- end
    assert printed(capsys) == "Member offline operation completed\n"
    current = {u["memberId"] for u in nail_corp.getLocalCorpData()["userList"]}
    assert MEMBER123 not in current and MEMBER456 not in current


def test_save_user_signature(app, capsys):
    # --- seed example: saveUserSignature (id replaced)
    nail_corp = app.getElement("corps.testNailDivision")
    result = nail_corp.saveUserSignature("0100000033762", "https://example.com/signature.png")
    print("Signature saved successfully")
    # --- end
    assert printed(capsys) == "Signature saved successfully\n"
    assert nail_corp.getUserSignature(MEMBER123)["signature"] == "https://example.com/signature.png"
    assert isinstance(result, dict)


def test_set_admin(app, capsys):
    # --- seed example: setAdmin (ids replaced)
    nail_corp = app.getElement("corps.testNailDivision")
    result = nail_corp.setAdmin(["0100000033762", "0100000040169"])
    print("Administrator set successfully")
    # --- end
    assert printed(capsys) == "Administrator set successfully\n"
    assert {MEMBER123, MEMBER456} <= set(nail_corp.getAdmin())
    assert isinstance(result, dict)


def test_sync_corp(app, capsys):
    # --- seed example: syncCorp (the try block's indentation restored)
    nail_corp = app.getElement("corps.testNailDivision")
    try:
        nail_corp.syncCorp()
        print("Organizational architecture sync successful")
    except Exception as e:
        print(f"Sync failed: {e}")
    # --- end
    assert printed(capsys) == "Organizational architecture sync successful\n"


def test_sync_corp_failure_branch(app_dir, capsys):
    """The same example's ``except`` branch: a wrong secret is a
    PlatformError whose message is the CLI's, secret-free."""
    import jit

    config = app_dir / "corps/testNailDivision/testNailDivision.json"
    config.write_text(config.read_text().replace('"appSecret": "', '"appSecret": "wrong'))
    app = jit.App.load(app_dir)
    # --- seed example: syncCorp (the try block's indentation restored)
    nail_corp = app.getElement("corps.testNailDivision")
    try:
        nail_corp.syncCorp()
        print("Organizational architecture sync successful")
    except Exception as e:
        print(f"Sync failed: {e}")
    # --- end
    out = printed(capsys)
    assert out.startswith("Sync failed: corps.testNailDivision.syncCorp failed: "), out
    assert "wrong" not in out


def test_advanced_features(app, capsys):
    # --- seed example: Advanced Features, "Automatic Sync Mechanism"
    # Automatically trigger sync when creating instance
    nail_corp = app.getElement("corps.testNailDivision")
    # System automatically executes: initCorp() -> syncCorp() -> bulkRegister()
    # --- end
    # The next example continues this one: `nail_corp` is the one above.
    # --- seed example: Advanced Features, "User Identity Binding"
    # Automatically handle user binding during sync
    nail_corp.syncCorp()
    # System automatically handles:
    # 1. Identify user uniqueness based on unionId
    # 2. Create or update local user accounts
    # 3. Maintain DingTalk authentication information table
    # 4. Set organization member relationships
    # --- end
    assert printed(capsys) == ""
    users = nail_corp.getLocalCorpData()["userList"]
    assert all(u["unionId"] for u in users)
