"""jit: load an app (a folder tree of elements) and use its elements from
Python, in particular the built-in organization Types ``corps.QywxInnerType``
(WeCom) and ``corps.DDInnerType`` (DingTalk) with the seed documents' method
names and argument order.

>>> import jit
>>> sim = jit.sim.start(users=40, depts=8)          # no credentials needed
>>> app = jit.App.load("my-app")                    # doctest: +SKIP
>>> corp = app.getElement("corps.MyQywxCorp")       # doctest: +SKIP
>>> corp.initCorp()                                 # doctest: +SKIP
>>> print(f"Root Department: {corp.getRootDept().name.value}")  # doctest: +SKIP

Values: JSON objects come back as :class:`Row` (a dict whose keys are also
attributes, each a :class:`Field` with ``.value``), lists as lists. Errors
are :class:`JitError` subclasses, one per kind (:class:`ElementNotFound`,
:class:`ArgumentError`, :class:`SyncRefused`, :class:`PlatformError` with
``errcode``, ...). Calls release the GIL; Ctrl-C cancels a running call.
"""

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import _native
from ._errors import *  # noqa: F401,F403  (the exception classes are API)
from ._errors import ArgumentError, ElementNotFound, MethodNotFound, __all__ as _error_names
from ._values import Field, Row, decode, encode
from . import sim

__all__ = ["App", "Element", "OrgElement", "Row", "Field", "sim"] + list(_error_names)


def _camel(name: str) -> str:
    """``dry_run`` → ``dryRun``: snake-case aliases of the seeds' names."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _snake(name: str) -> str:
    """``syncCorp`` → ``sync_corp``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class App:
    """A loaded app: its elements, resolved Meta → Type → Instance.

    Load one with :meth:`App.load`; look elements up with
    :meth:`getElement` (Instances, ready to call), :meth:`getElementDefine`
    (any declaration) and :meth:`findElements` (by selector). An App is
    safe to share between threads.
    """

    __slots__ = ("_native",)

    def __init__(self, native: "_native.NativeApp"):
        self._native = native

    @classmethod
    def load(
        cls,
        path: "str | os.PathLike[str]" = ".",
        *,
        store: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        plugins: bool = True,
    ) -> "App":
        """Loads the app in folder ``path`` with the built-in org Types.

        - ``store``: where orgs are stored, a ``postgres://`` URL or an
          SQLite file path; default as the CLI: ``DATABASE_URL``, then
          ``settings.databaseUrl`` of ``app.json``, then ``<app>/.jit/org.db``.
        - ``env``: variables for ``{{NAME}}`` placeholders in config files,
          looked up before the process environment (then ``env`` of
          ``app.json``).
        - ``plugins``: load the plugins the app declares (default on).

        Problems in the app's files do not raise here: they are in
        :attr:`diagnostics`, and using a broken element raises
        :class:`ElementInvalid`. A missing folder raises :class:`LoadError`.
        """
        variables = None
        if env is not None:
            variables = dict(os.environ)
            variables.update({str(k): str(v) for k, v in env.items()})
        return cls(_native.NativeApp.load(os.fspath(path), store, variables, plugins))

    @property
    def root(self) -> str:
        """The app's folder."""
        return self._native.root

    @property
    def appId(self) -> str:
        """``appId`` from ``app.json`` (empty if none)."""
        return self._native.app_id

    @property
    def diagnostics(self) -> List[Row]:
        """Every problem found while loading: ``severity``, ``code``,
        ``file``, ``pointer``, ``message`` (what ``jit check`` prints)."""
        return decode(self._native.diagnostics())

    def getElement(self, fullName: str) -> "Element":
        """The Instance named ``fullName``, ready to call.

        Org Types (``corps.QywxInnerType``, ``corps.DDInnerType`` and plugin
        org Types) come back as :class:`OrgElement`. Raises
        :class:`ElementNotFound` (the message suggests close names) or
        :class:`ElementInvalid` (a Meta or Type, or a declaration with errors).
        """
        native = self._native.get_element(fullName)
        functions = {f["name"] for f in decode(native.functions())}
        cls = OrgElement if {"syncCorp", "getLocalCorpData"} <= functions else Element
        return cls(native)

    def getElementDefine(self, fullName: str) -> Optional[Row]:
        """The declaration of any element (Meta, Type or Instance): its
        e.json fields plus ``fullName``, ``kind``, ``meta``, ``chain`` and the
        resolved ``functionList``; ``None`` if there is no such element."""
        text = self._native.get_element_define(fullName)
        return None if text is None else decode(text)

    def findElements(self, selector: str) -> List[Row]:
        """Declarations of the elements matching ``selector``; a comma
        separates alternatives:

        - ``corps.X``: that element;
        - ``.corps.QywxInnerType``: elements whose chain contains that Type;
        - ``corps.*`` / ``corps*``: fullName starts with;
        - ``*corps.X.y``: the elements whose folders contain ``corps.X.y``;
        - ``#attr=value``: e.json field equals value (``#attr``: has it).
        """
        return [self.getElementDefine(n) for n in self._native.find_elements(selector)]

    def elementNames(self) -> List[str]:
        """Every element's fullName (Metas, Types, Instances)."""
        return self._native.element_names()

    get_element = getElement
    get_element_define = getElementDefine
    find_elements = findElements
    element_names = elementNames
    app_id = appId

    def __repr__(self) -> str:
        return f"<jit.App {self.appId or '-'} at {self.root}>"


class Element:
    """An Instance element. Call its declared methods as Python methods
    (positional in declared order, or by name; snake-case names work too)
    and read its properties as attributes."""

    __slots__ = ("_native", "_functions", "_properties")

    def __init__(self, native: "_native.NativeElement"):
        self._native = native
        self._functions: Dict[str, List[str]] = {
            f["name"]: [a["name"] for a in f.get("args", [])] for f in decode(native.functions())
        }
        self._properties = set(native.property_names())

    @property
    def fullName(self) -> str:
        """The element's fullName."""
        return self._native.full_name

    @property
    def title(self) -> str:
        """The element's title."""
        return self._native.title

    @property
    def typeName(self) -> str:
        """The Type whose implementation built it."""
        return self._native.type_name

    def methods(self) -> List[str]:
        """The names of its callable methods."""
        return sorted(self._functions)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Calls method ``method``: positional arguments in declared order,
        keyword arguments by name (camelCase, or its snake-case alias).
        Optional arguments given as ``None`` are left out. Releases the GIL
        while it runs; Ctrl-C cancels it."""
        names = self._functions.get(method)
        if names is None:
            # Unknown: let the runtime say so, with the list of methods.
            return decode(self._native.call(method, "null"))
        # Optional arguments the seeds' signatures list but this Type does
        # not declare (WeCom's bulkRegister has no memberList) may be None.
        while args and args[-1] is None and len(args) > len(names):
            args = args[:-1]
        if len(args) > len(names):
            raise ArgumentError(
                f"{self.fullName}.{method}: takes {len(names)} argument(s) "
                f"({', '.join(names) or 'none'}), {len(args)} given"
            )
        named: Dict[str, Any] = dict(zip(names, args))
        for key, value in kwargs.items():
            name = key if key in names else _camel(key)
            if name in named:
                raise ArgumentError(f"{self.fullName}.{method}: `{name}` given twice")
            named[name] = value
        named = {k: v for k, v in named.items() if v is not None}
        return decode(self._native.call(method, encode(named)))

    def property(self, name: str) -> Any:
        """Reads property ``name`` (secrets come back masked)."""
        text = self._native.property(name)
        if text is None:
            raise AttributeError(f"{self.fullName} has no property {name!r}")
        return decode(text)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        functions = object.__getattribute__(self, "_functions")
        for candidate in (name, _camel(name)):
            if candidate in functions:
                def method(*args: Any, **kwargs: Any) -> Any:
                    return self.call(candidate, *args, **kwargs)

                method.__name__ = candidate
                return method
            if candidate in object.__getattribute__(self, "_properties"):
                return self.property(candidate)
        raise MethodNotFound(
            f"{self.fullName} has no method or property `{name}`; its methods are: "
            f"{', '.join(sorted(functions))}"
        )

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._functions) | self._properties)

    def __repr__(self) -> str:
        return f"<jit.{type(self).__name__} {self.fullName} ({self.typeName})>"


class OrgElement(Element):
    """An organization element (``corps.QywxInnerType``,
    ``corps.DDInnerType`` or a plugin org Type), with the seed documents'
    methods, argument names and order.

    Results are what the runtime returns: ``syncCorp``/``initCorp`` a run
    report (the seeds ignore it), ``getRootDept`` a :class:`Row`
    (``root_dept.name.value``), ``getLocalCorpData`` a dict of lists, ...
    """

    __slots__ = ()

    def initCorp(self, dryRun: Optional[bool] = None, force: Optional[bool] = None) -> Row:
        """``syncCorp()`` then ``bulkRegister()`` on the same read of the
        platform; returns the run report."""
        return self.call("initCorp", dryRun=dryRun, force=force)

    def syncCorp(self, dryRun: Optional[bool] = None, force: Optional[bool] = None) -> Row:
        """Fetches the org, diffs it against the store, checks safety
        (raises :class:`SyncRefused` when it would offline too many members;
        ``force=True`` overrides) and applies it in one transaction. Returns
        the run report (``outcome``, counts, changes). ``dryRun=True`` plans
        without writing. Raises :class:`SyncBusy` if another sync of this org
        runs. Ctrl-C cancels it and nothing is written."""
        return self.call("syncCorp", dryRun=dryRun, force=force)

    def getThirdCorpData(self) -> Row:
        """The org as the platform has it now: ``corpId``, ``userDict``,
        ``deptDict``, roles, admins."""
        return self.call("getThirdCorpData")

    def bulkRegister(self, corpData: Mapping[str, Any], memberList: Optional[Sequence[Any]] = None) -> Row:
        """Creates or updates local users and auth bindings from
        ``corpData`` (a :meth:`getThirdCorpData` result), only for
        ``memberList`` when given (DingTalk). Identity conflicts are
        returned, never merged."""
        return self.call("bulkRegister", corpData, memberList=memberList)

    def getLocalCorpData(self, includeOffline: Optional[bool] = None) -> Row:
        """The org in the store: ``corp``, ``userList``, ``deptList``,
        ``deptMemberList``, ``roleList``, ``roleGroupList``,
        ``roleMemberSet``, ``adminList``."""
        return self.call("getLocalCorpData", includeOffline=includeOffline)

    def getRootDept(self) -> Row:
        """The root department: ``deptId``, ``name``, ``corpFullName``."""
        return self.call("getRootDept")

    def setUserRole(self, memberId: str, roleIdList: Sequence[str]) -> List[Row]:
        """Replaces the member's local roles with ``roleIdList``; returns all
        the member's role rows, each with its ``origin``."""
        return self.call("setUserRole", memberId, roleIdList)

    def offlineMember(self, memberIdList: Sequence[str]) -> Any:
        """Marks members resigned in this org only; returns how many."""
        return self.call("offlineMember", memberIdList)

    def getUserSignature(self, memberId: str) -> Row:
        """``{"signature": link}`` of a member (``None`` if none saved)."""
        return self.call("getUserSignature", memberId)

    def saveUserSignature(self, memberId: str, signature: str) -> Row:
        """Saves a member's signature image link (must be http(s))."""
        return self.call("saveUserSignature", memberId, signature)

    def setAdmin(self, memberIdList: Sequence[str]) -> Row:
        """Sets the org's local administrators."""
        return self.call("setAdmin", memberIdList)

    def getAdmin(self) -> List[Any]:
        """Every administrator, platform and local."""
        return self.call("getAdmin")

    def getCorpInfo(self) -> Row:
        """``title``, ``fullName``, ``corpId``, last successful sync, ..."""
        return self.call("getCorpInfo")

    def getClient(self) -> Row:
        """A description of the platform client (platform, API base,
        corpId); the client itself lives in the runtime."""
        return self.call("getClient")

    @property
    def corpData(self) -> Row:
        """``title``, ``fullName``, ``type`` and the config (secrets masked)."""
        return self.property("corpData")

    @property
    def title(self) -> str:
        """The org's display title."""
        return self.property("title")

    @property
    def fullName(self) -> str:
        """The element's fullName."""
        return self.property("fullName")

    @property
    def corpFullName(self) -> str:
        """Alias of :attr:`fullName`."""
        return self.property("corpFullName")

    @property
    def authConfig(self) -> Row:
        """The authentication config: ``corpId``, ``agentId``, ... (secrets masked)."""
        return self.property("authConfig")

    init_corp = initCorp
    sync_corp = syncCorp
    get_third_corp_data = getThirdCorpData
    bulk_register = bulkRegister
    get_local_corp_data = getLocalCorpData
    get_root_dept = getRootDept
    set_user_role = setUserRole
    offline_member = offlineMember
    get_user_signature = getUserSignature
    save_user_signature = saveUserSignature
    set_admin = setAdmin
    get_admin = getAdmin
    get_corp_info = getCorpInfo
    get_client = getClient
