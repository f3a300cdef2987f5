"""Faster ``__init__`` for the frozen dataclasses of the hot path, with the same behaviour.

The values a message is made of (a Via, a URI, a name-addr), the effects a machine answers with and the
records the roles pass around are ``@dataclass(frozen=True, slots=True)``: immutable, so that memoised
parses and effects can be shared. CPython's dataclasses give a frozen class an ``__init__`` that sets each
field with ``object.__setattr__(self, name, value)`` (its ``__setattr__`` refuses assignment), which in
CPython 3.11 costs about four times a plain slot assignment: some 7 % of the server's CPU time per proxied
MESSAGE went to these constructors (py-spy, ``benchmarks/call.py --message``).

``speed_up(module, ...)`` replaces that generated ``__init__`` of each frozen slotted dataclass the modules
define with one that sets each slot through its member descriptor (``Class.field.__set__``, bound once),
which skips the generic attribute machinery; about 35 % less per object. Everything else is left as
dataclasses made it: the class stays frozen (assignment still raises ``FrozenInstanceError``), and
``__eq__``, ``__hash__``, ``__repr__``, ``__match_args__`` and ``dataclasses.replace`` are untouched. The new
``__init__`` has the same parameters, defaults, default factories and ``__post_init__`` call; a class this
module does not know how to treat exactly (``InitVar``, keyword-only fields) keeps its own. Classes compiled by mypyc (``make compiled``) are native and have no generated ``__init__``:
they are left alone. ``tests/test_frozen.py`` holds each replaced ``__init__`` equal to the original.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

__all__ = ["originals", "speed_up", "speed_up_all"]

#: The generated ``__init__`` each replaced one had, by class (the tests compare the two).
originals: dict[type, Callable[..., None]] = {}


def _generated(cls: type) -> bool:
    # dataclasses compiles its __init__ from source text (its code object's file is "<string>"); a native
    # (mypyc) class's is not Python code at all
    code = getattr(cls.__dict__.get("__init__"), "__code__", None)
    return code is not None and code.co_filename == "<string>"


def _eligible(cls: type) -> bool:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not params.init or "__slots__" not in cls.__dict__:
        return False
    if cls in originals or not _generated(cls):
        return False
    for field in dataclasses.fields(cls):
        if field.kw_only:
            return False
    # an InitVar is an __init__ parameter that dataclasses.fields does not list
    return not any(isinstance(hint, dataclasses.InitVar) for hint in getattr(cls, "__annotations__", {}).values())


def _fast_init(cls: type) -> Callable[..., None]:
    fields = dataclasses.fields(cls)
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    parameters, body, bound = [], [], []
    for index, field in enumerate(fields):
        name = field.name
        setter = f"_set{index}"
        namespace[setter] = getattr(cls, name).__set__  # the slot's member descriptor
        if not field.init:  # not a parameter: set to its default, as dataclasses does, or left unset
            if field.default is not dataclasses.MISSING:
                namespace[f"_default{index}"] = field.default
                bound.append(f"{setter}={setter}")
                body.append(f"    {setter}(self, _default{index})")
            elif field.default_factory is not dataclasses.MISSING:
                namespace[f"_factory{index}"] = field.default_factory
                bound.append(f"{setter}={setter}")
                body.append(f"    {setter}(self, _factory{index}())")
            continue
        bound.append(f"{setter}={setter}")
        if field.default is not dataclasses.MISSING:
            namespace[f"_default{index}"] = field.default
            parameters.append(f"{name}=_default{index}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{index}"] = field.default_factory
            parameters.append(f"{name}=_MISSING")
            body.append(f"    if {name} is _MISSING:\n        {name} = _factory{index}()")
        else:
            parameters.append(name)
        body.append(f"    {setter}(self, {name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    # the setters are keyword-only defaults: locals at call time, not global look-ups
    signature = ", ".join(["self", *parameters, "*", *bound]) if bound else "self"
    source = f"def __init__({signature}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(compile(source, f"<fast __init__ of {cls.__qualname__}>", "exec"), namespace)  # noqa: S102 - the source is made here from the class's own field names
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__dict__["__init__"].__doc__
    return init


def speed_up(modules: Iterable[ModuleType]) -> int:
    """Give every eligible frozen dataclass defined in ``modules`` the fast ``__init__``; how many got one."""
    count = 0
    for module in modules:
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == module.__name__ and _eligible(value):
                originals[value] = value.__dict__["__init__"]
                value.__init__ = _fast_init(value)  # type: ignore[misc]
                count += 1
    return count


def speed_up_all() -> int:
    """``speed_up`` every sipactors module, each imported first (a server calls it once, at start-up;
    tests/conftest.py too, so that the suite runs the classes as the server has them)."""
    import sipactors

    for info in pkgutil.walk_packages(sipactors.__path__, "sipactors."):
        if not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
    return speed_up(module for name, module in list(sys.modules.items())
                    if module is not None and (name == "sipactors" or name.startswith("sipactors.")))
