"""Values as the seed documents use them.

Every JSON object a call returns becomes a :class:`Row`: a ``dict`` (so
``local_data['userList']``, ``corp_data.get('userDict', {})``, ``len()``,
``json.dumps`` and ``print`` work as on any dict) that also answers its keys
as attributes. An attribute is a :class:`Field`, the seeds' typed value:
``root_dept.name.value`` is the plain value, and ``str()``, f-strings,
``==``, ``len()``, iteration and indexing behave like the plain value, so
``print(f"{root_dept.name}")`` prints the name. Lists stay lists, strings,
numbers, booleans and ``None`` stay themselves.
"""

import json
from typing import Any, Iterator

__all__ = ["Row", "Field", "decode", "encode", "masked"]


class Field:
    """One attribute of a :class:`Row`; ``.value`` is the plain value."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        #: The plain value (str, int, float, bool, None, list or Row).
        self.value = value

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __eq__(self, other: Any) -> bool:
        return self.value == (other.value if isinstance(other, Field) else other)

    def __ne__(self, other: Any) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def __contains__(self, item: Any) -> bool:
        return item in self.value

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    def __int__(self) -> int:
        return int(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __lt__(self, other: Any) -> bool:
        return self.value < (other.value if isinstance(other, Field) else other)

    def __getattr__(self, name: str) -> Any:
        # Everything else is the value's: `field.upper()`, and for a nested
        # object `corp_data.authConfig.corpId` (a Field again).
        if name == "value":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.value, name)


class Row(dict):
    """A JSON object: a ``dict`` whose keys are also attributes (as
    :class:`Field`). Dict methods win over keys of the same name
    (``row.items`` is the method; ``row['items']`` the key)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Field:
        try:
            return Field(self[name])
        except KeyError:
            fields = ", ".join(sorted(self)) or "none"
            raise AttributeError(
                f"this object has no field {name!r}; its fields are: {fields}"
            ) from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | {k for k in self if k.isidentifier()})


def decode(text: str) -> Any:
    """JSON text from the runtime → Python values (objects become Rows)."""
    return json.loads(text, object_hook=Row)


def _plain(value: Any) -> Any:
    if isinstance(value, Field):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be passed to the runtime (not JSON)")


def encode(value: Any) -> str:
    """Python values → JSON text for the runtime (Fields pass their value)."""
    return json.dumps(value, default=_plain, ensure_ascii=False)


_SECRET_WORDS = ("secret", "password", "token", "apikey", "api_key", "aeskey", "aes_key")


def _is_secret(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in _SECRET_WORDS)


def masked(value: Any) -> Any:
    """A copy with every secret-looking key's value replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: ("***" if _is_secret(str(k)) and isinstance(v, str) and v else masked(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


class SecretRow(Row):
    """A :class:`Row` holding credentials: ``repr()`` and ``str()`` mask
    secrets; item and attribute access return the real values."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(masked(self))

    __str__ = __repr__


def secret_rows(value: Any) -> Any:
    """Turns every object in ``value`` into a :class:`SecretRow`."""
    if isinstance(value, dict):
        return SecretRow({k: secret_rows(v) for k, v in value.items()})
    if isinstance(value, list):
        return [secret_rows(v) for v in value]
    return value
