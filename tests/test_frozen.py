"""``sipactors.frozen``: every frozen dataclass given the fast ``__init__`` builds exactly what the
``__init__`` dataclasses generated builds, with every argument given and with the defaults, fails the same
way, and stays frozen."""

from __future__ import annotations

import dataclasses
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Any

import pytest

from sipactors.frozen import _eligible, originals, speed_up_all
from sipactors.fsm.effects import StartTimer
from sipactors.message.fields import Via
from sipactors.message.uri import SipURI
from sipactors.store.model import Binding


class _Token:
    """An argument no ``__post_init__`` special-cases: what goes in must come out as is."""

    def __repr__(self) -> str:
        return f"<token {id(self):x}>"


def _state(obj: Any, cls: type) -> dict[str, Any]:
    return {field.name: getattr(obj, field.name, "<unset>") for field in dataclasses.fields(cls)}


def _build(init: Any, cls: type, args: list[Any]) -> tuple[str, Any]:
    obj = object.__new__(cls)
    try:
        init(obj, *args)
    except Exception as error:  # a __post_init__ that refuses the tokens: both must refuse alike
        return "raised", (type(error), str(error))
    return "built", _state(obj, cls)


def test_the_server_gets_the_fast_init_for_the_hot_path() -> None:
    speed_up_all()
    hot = (Via, SipURI, StartTimer, Binding)  # the values of a parsed message, effects, the registrar's records
    for cls in hot:
        # in the compiled build these classes are mypyc's (their module is an extension module): left alone
        compiled = (sys.modules[cls.__module__].__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))
        assert (cls in originals) != compiled, cls
    assert speed_up_all() == 0  # once only: a second call replaces nothing


def test_no_frozen_dataclass_keeps_a_generated_init_it_could_do_without() -> None:
    speed_up_all()
    left = [cls for module in list(sys.modules.values()) if module is not None and module.__name__.startswith("sipactors")
            for cls in vars(module).values()
            if isinstance(cls, type) and cls.__module__ == module.__name__ and _eligible(cls)]
    assert left == []


@pytest.mark.parametrize("cls", sorted(originals, key=lambda c: f"{c.__module__}.{c.__qualname__}"),
                         ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_the_fast_init_builds_what_the_generated_one_builds(cls: type) -> None:
    fast, original = cls.__dict__["__init__"], originals[cls]
    assert fast is not original
    fields = [field for field in dataclasses.fields(cls) if field.init]
    required = [field for field in fields if field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING]
    every = [_Token() for _ in fields]
    minimal = every[: len(required)]  # required fields come first in a dataclass
    for args in (every, minimal):
        assert _build(fast, cls, args) == _build(original, cls, args)
    with pytest.raises(TypeError):
        cls(*every, _Token())  # one argument too many
    if len(required) > 0:
        with pytest.raises(TypeError):
            cls()  # a required argument missing
    built = object.__new__(cls)
    if fields and _build(fast, cls, every)[0] == "built":
        fast(built, *every)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, fields[0].name, None)
