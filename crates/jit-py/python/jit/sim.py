"""The WeCom + DingTalk simulator, in-process: real wire formats, a generated
company, no credentials and no separate process.

>>> import jit
>>> sim = jit.sim.start(users=40, depts=8)
>>> sim.wecom["corpId"].startswith("ww")
True
>>> sim.stop()

Settings are the ``jit sim`` flags / ``SimConfig`` fields, in snake case or
camelCase: ``seed``, ``depts``, ``users``, ``dingtalk_depts``,
``dingtalk_users``, ``dingtalk_orgs``, ``latency_ms``, ``fault_rate``, ...
"""

from typing import Any, Dict, List, Optional

from . import _native
from ._values import SecretRow, decode, encode, masked, secret_rows

__all__ = ["start", "Simulator"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def start(users: Optional[int] = None, depts: Optional[int] = None, **settings: Any) -> "Simulator":
    """Starts a simulator on a free port of 127.0.0.1 and returns it (its
    URLs and credentials). It serves until :meth:`Simulator.stop` or the
    end of the process. ``users``/``depts`` size the WeCom corp and, unless
    ``dingtalk_users``/``dingtalk_depts`` say otherwise, each DingTalk org."""
    config: Dict[str, Any] = {_camel(k): v for k, v in settings.items()}
    if users is not None:
        config["users"] = users
    if depts is not None:
        config["depts"] = depts
    return Simulator(_native.sim_start(encode(config)))


class Simulator:
    """A running simulator. :attr:`info` is what ``jit sim`` prints (base
    URL, admin URL, seed, limits, and per platform the URLs and
    credentials); ``repr()`` and ``str()`` of it mask the secrets, item and
    attribute access return them."""

    __slots__ = ("_native", "info")

    def __init__(self, native: "_native.NativeSim"):
        self._native = native
        #: URLs and credentials (a dict; secrets masked when printed).
        self.info: SecretRow = secret_rows(decode(native.info()))

    @property
    def baseUrl(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.info["baseUrl"]

    @property
    def wecom(self) -> SecretRow:
        """The WeCom corp: ``apiBaseUrl``, ``corpId``, ``agentId``, ``secret``, ``contactSecret``."""
        return self.info["wecom"]

    @property
    def dingtalk(self) -> List[SecretRow]:
        """Each DingTalk org: ``label``, ``oapiBaseUrl``, ``apiBaseUrl``,
        ``corpId``, ``agentId``, ``appKey``, ``appSecret``."""
        return self.info["dingtalk"]

    def wecomConfig(self) -> Dict[str, Any]:
        """A WeCom org config file's contents (the seed's flat form, plus
        ``apiBase``) for this simulator."""
        w = self.wecom
        return {
            "corpId": w["corpId"],
            "agentId": str(w["agentId"]),
            "secret": w["secret"],
            "apiBase": w["apiBaseUrl"],
        }

    def dingtalkConfig(self, org: int = 0) -> Dict[str, Any]:
        """A DingTalk org config file's contents (the seed's ``authConfig``
        form, plus ``apiBase``/``oapiBase``) for simulated org ``org``."""
        d = self.dingtalk[org]
        return {
            "authConfig": {
                "corpId": d["corpId"],
                "agentId": str(d["agentId"]),
                "appKey": d["appKey"],
                "appSecret": d["appSecret"],
                "apiBase": d["apiBaseUrl"],
                "oapiBase": d["oapiBaseUrl"],
            }
        }

    def mutate(self, org: str = "wecom", **mutation: Any) -> Dict[str, Any]:
        """Changes simulated org ``org`` (``"wecom"``, ``"dingtalk-0"``, ...)
        as its admin would, e.g. ``sim.mutate(op="removeMember",
        userid="u1")``; the next sync sees it. Operations: addMember,
        updateMember, moveMember, disableMember, enableMember, removeMember,
        addDept, renameDept, moveDept, removeDept, addRole, renameRole,
        removeRole, addRoleMembers, removeRoleMembers, setAdmins,
        setVisibleRange (fields in camelCase or snake case)."""
        body = {_camel(k): v for k, v in mutation.items()}
        return decode(self._native.mutate(org, encode(body)))

    def setLatencyMs(self, ms: int) -> None:
        """Adds ``ms`` milliseconds to every API answer from now on."""
        self._native.set_latency_ms(ms)

    def stop(self) -> None:
        """Stops serving (idempotent)."""
        self._native.stop()

    wecom_config = wecomConfig
    dingtalk_config = dingtalkConfig
    set_latency_ms = setLatencyMs
    base_url = baseUrl

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<jit.sim.Simulator {self.baseUrl} {masked(dict(self.info))}>"
