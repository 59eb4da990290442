"""Exception classes: one per kind of runtime error.

The native module raises these by name; the message is the one the CLI
(`jit call`, `jit sync`) prints after ``error:``. Messages never contain
secrets.
"""

from typing import Optional

__all__ = [
    "JitError",
    "LoadError",
    "StoreError",
    "ElementNotFound",
    "ElementInvalid",
    "MethodNotFound",
    "ArgumentError",
    "NotImplementedByType",
    "SyncBusy",
    "SyncRefused",
    "PlatformError",
    "InternalError",
]


class JitError(Exception):
    """Base class of every error the runtime raises."""

    def __init__(self, message: str, errcode: Optional[str] = None):
        super().__init__(message)
        #: The platform's error code (WeCom ``errcode``, DingTalk ``code``)
        #: when the platform sent one; ``None`` otherwise.
        self.errcode = errcode

    @property
    def message(self) -> str:
        """The message, as the CLI prints it."""
        return str(self.args[0]) if self.args else ""


class LoadError(JitError):
    """The app folder does not exist or cannot be read."""


class StoreError(JitError):
    """The org store (SQLite file or PostgreSQL database) cannot be opened."""


class ElementNotFound(JitError, LookupError):
    """No element has that fullName (the message suggests close names)."""


class ElementInvalid(JitError):
    """The element exists but cannot be used as asked: it is a Meta or Type
    (``getElement`` returns Instances), its declaration has errors (see
    ``jit check``), or its Type failed to build it."""


class MethodNotFound(JitError, AttributeError):
    """The element declares no method of that name."""


class ArgumentError(JitError, ValueError):
    """An argument is missing, unexpected or of the wrong type, or the
    implementation rejected its value (an unknown member, a malformed link)."""


class NotImplementedByType(JitError, NotImplementedError):
    """The method is declared but its Type does not implement it."""


class SyncBusy(JitError):
    """Another sync of the same org is running (in this or another process);
    trying again later may work."""


class SyncRefused(JitError):
    """A safety check refused the sync (e.g. it would offline too many
    members); ``syncCorp(force=True)`` overrides after you have looked
    (``syncCorp(dryRun=True)`` shows the plan)."""


class PlatformError(JitError):
    """WeCom or DingTalk failed or refused the call; ``errcode`` is the
    platform's error code when it sent one."""


class InternalError(JitError):
    """Anything else: a store failure, a plugin failure, a bug."""
