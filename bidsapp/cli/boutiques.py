"""Boutiques descriptor of the bidsapp command, generated from the argument parser.

``python -m bidsapp.cli.boutiques > boutiques.json`` (a test checks the file is up to date).
"""

from __future__ import annotations

import argparse
import json

from bidsapp import __version__
from bidsapp.cli.parser import EXIT_CODES, build_parser


def _input(action: argparse.Action) -> dict:
    name = action.dest
    key = f"[{name.upper()}]"
    entry = {"id": name, "name": name.replace("_", " "), "value-key": key,
             "description": (action.help or "").replace("%(default)s", str(action.default)),
             "optional": bool(action.option_strings) and not action.required}
    if action.option_strings:
        entry["command-line-flag"] = max(action.option_strings, key=len)
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        entry["type"] = "Flag"
    else:
        entry["type"] = "Number" if getattr(action.type, "number_kind", action.type) in (int, float) else "String"
        if action.choices:
            entry["value-choices"] = list(action.choices)
        if action.nargs in ("+", "*") or isinstance(action.nargs, int) and action.nargs > 1:
            entry["list"] = True
        if action.option_strings and action.default not in (None, [], argparse.SUPPRESS):
            entry["default-value"] = action.default
    return entry


def descriptor() -> dict:
    parser = build_parser()
    actions = [a for a in parser._actions
               if not isinstance(a, argparse._HelpAction | argparse._VersionAction)
               and not isinstance(a, argparse.BooleanOptionalAction) and a.help != argparse.SUPPRESS]
    inputs = [_input(a) for a in actions]
    for a in parser._actions:  # --detrend/--no-detrend
        if isinstance(a, argparse.BooleanOptionalAction):
            inputs.append({"id": f"no_{a.dest}", "name": f"no {a.dest}", "type": "Flag", "optional": True,
                           "value-key": f"[NO_{a.dest.upper()}]", "command-line-flag": f"--no-{a.dest}",
                           "description": f"disable {a.dest}"})
    return {
        "name": "bidsapp",
        "tool-version": __version__,
        "schema-version": "0.5",
        "description": parser.description,
        "command-line": "bidsapp " + " ".join(i["value-key"] for i in inputs),
        "container-image": {"type": "docker", "image": f"bidsapp/bidsapp:{__version__}"},
        "inputs": inputs,
        "output-files": [{"id": "output_dir", "name": "output folder", "path-template": "[OUTPUT_DIR]"}],
        "error-codes": [{"code": code, "description": what} for code, what in EXIT_CODES if code],
    }


if __name__ == "__main__":
    print(json.dumps(descriptor(), indent=2))
