"""Command-line options generated from config dataclasses, so each default is written once: on the field.

A field becomes ``--field-name`` (``dest`` = the field name) with the field's type, default, and its
``metadata["help"]`` (``metadata["choices"]`` too, when given). Types: ``int``, ``float``, ``str``, ``X | None``,
``list[X]`` (one or more values), ``Literal[...]`` (choices), string enums (the values, parsed by the dataclass)
and ``bool`` (``--name`` when the default is False, ``--no-name`` when it is True; ``bool | None``: both, and
neither leaves None, for "the library decides"). The command line's own
spellings (another flag name, ``required``, ``action``...) are given per field by the caller; fields the command
line leaves out are named with a reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

CliSpec = Mapping[str, Mapping[str, Any]]
"""Per field name: argparse keywords that replace the generated ones; ``"flags"``: the option strings."""


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    cli: CliSpec | None = None,
    exclude: Mapping[str, str] | None = None,
) -> list[str]:
    """Add one option per field of dataclass ``cls`` (but the ``exclude`` ones: name -> why) to ``parser``; returns
    the field names added. A field without a default is a required option, and so is one that ``cli`` marks
    ``required`` (its dataclass default is then not shown)."""
    cli, exclude = cli or {}, exclude or {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted((set(cli) | set(exclude)) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kwargs = _field_kwargs(f, hints[f.name])
        kwargs.update((k, v) for k, v in cli.get(f.name, {}).items() if k != "flags")
        if kwargs.get("required"):
            kwargs.pop("default", None)
        if kwargs.get("action") in ("store_true", "store_false"):
            kwargs.pop("type", None)
            kwargs.pop("metavar", None)
        if kwargs.get("action") == "store_false":  # the field's help describes what the flag turns off
            kwargs["help"] = f"turn off (on by default): {kwargs.get('help', '')}".rstrip(": ")
        flags = cli.get(f.name, {}).get("flags") or [_flag(f.name, kwargs)]
        if not {"metavar", "action", "choices"} & kwargs.keys():  # metavar from the flag, as argparse would name it
            kwargs["metavar"] = flags[0].lstrip("-").upper().replace("-", "_")
        parser.add_argument(*flags, dest=f.name, **kwargs)
        added.append(f.name)
    return added


def config_from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """The ``cls`` instance the parsed ``args`` describe (fields without an option keep their default);
    ``values`` replace parsed ones (e.g. converted)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **values})


def default_of(func: Callable, name: str) -> Any:
    """The default of parameter ``name`` of ``func``: options that mirror a function's keyword read it here."""
    param = inspect.signature(func).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        raise TypeError(f"{func.__qualname__} has no parameter {name!r} with a default")
    return param.default


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the default is None or the option is a switch."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        shown = action.option_strings and action.nargs != 0 and not action.required
        if shown and action.default not in (None, argparse.SUPPRESS) and "%(default)" not in help_text:
            help_text += " (default: %(default)s)"
        return help_text


class LazyParser(argparse.ArgumentParser):
    """A sub-command parser whose options are added on first use by ``populate(parser)``: listing the commands,
    or running one, imports only what that command needs (no torch for ``lightmark check-submission``)."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._populate = populate

    def populate(self) -> LazyParser:
        """Add the options now (once); returns the parser."""
        if self._populate is not None:
            fill, self._populate = self._populate, None
            fill(self)
        return self

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self.populate()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.populate()
        return super().format_usage()

    def format_help(self) -> str:
        self.populate()
        return super().format_help()


def _flag(name: str, kwargs: Mapping[str, Any]) -> str:
    prefix = "--no-" if kwargs.get("action") == "store_false" else "--"
    return prefix + name.replace("_", "-")


def _field_kwargs(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    """Generated argparse keywords of one field: type (or action), default, help, choices."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = dataclasses.MISSING
    kwargs = _type_kwargs(f.name, tp, default)
    kwargs["help"] = str(f.metadata.get("help", "")).replace("%", "%%")
    if "choices" in f.metadata:
        kwargs["choices"] = list(f.metadata["choices"])
    if default is dataclasses.MISSING:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    return kwargs


def _type_kwargs(name: str, tp: Any, default: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2 and rest[0] is not bool:
            return _type_kwargs(name, rest[0], default)
        if rest == [bool]:  # a three-way switch: --x, --no-x, or neither (None: the library decides)
            return {"action": argparse.BooleanOptionalAction}
    elif tp is bool:
        return {"action": "store_false" if default is True else "store_true"}
    elif origin is typing.Literal:
        return {"type": type(args[0]), "choices": list(args)}
    elif isinstance(tp, type) and issubclass(tp, str) and issubclass(tp, Enum):
        # the dataclass parses the value (a one-line error listing the values); the help lists them too
        return {"type": str, "metavar": "{" + ",".join(m.value for m in tp) + "}"}
    elif origin is list and len(args) == 1 and args[0] in (int, float, str):
        return {"type": args[0], "nargs": "+"}
    elif tp in (int, float, str):
        return {"type": tp}
    raise TypeError(f"field {name!r}: no command-line form for type {tp!r}; give it one or exclude the field")
