"""Command lines built from frozen dataclasses: each option declared once, as a typed configuration field."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, field, fields
from typing import Any, TypeVar

Config = TypeVar("Config")


def option(default: Any, help: str, **argparse_options: Any) -> Any:
    """A configuration field and its command-line option, declared together (``MISSING``: required)."""
    return field(default=default, metadata={"help": help, **argparse_options})


def parse_config(cls: type[Config], argv: list[str] | None, description: str) -> Config:
    """Parse ``argv`` into ``cls``: ``--name-with-dashes`` per field; booleans get ``--no-...``; tuple
    fields repeat (``append`` unless the field says ``nargs``); a field that defaults to None names its
    ``type`` (else a string)."""
    parser = argparse.ArgumentParser(description=description)
    for item in fields(cls):  # type: ignore[arg-type]
        flag, extra = "--" + item.name.replace("_", "-"), dict(item.metadata)
        if item.default is MISSING:
            parser.add_argument(flag, required=True, **extra)
        elif isinstance(item.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=item.default, **extra)
        elif isinstance(item.default, tuple):
            if "nargs" not in extra:
                extra["action"] = "append"
            parser.add_argument(flag, default=[], **extra)
        else:
            extra.setdefault("type", type(item.default) if item.default is not None else str)
            parser.add_argument(flag, default=item.default, **extra)
    values = vars(parser.parse_args(argv))
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
