"""Every option of a bidsapp invocation, in one frozen dataclass generated from the options table."""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, field, fields, make_dataclass

from bidsapp.options import (
    MASK_STRATEGIES,
    NON_RESULT_FIELDS,
    OPTIONS,
    OUTPUT_FORMATS,
    REQUIRED,
    STRATEGY_PARAMETERS,
    SURFACES,
)

__all__ = ["MASK_STRATEGIES", "NON_RESULT_FIELDS", "OUTPUT_FORMATS", "SETTING_NAMES", "STRATEGY_PARAMETERS",
           "SURFACES", "Settings"]


def _to_dict(self) -> dict:
    """JSON-friendly dict of every setting."""
    from pathlib import Path

    out = {}
    for k, v in asdict(self).items():
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, tuple):
            v = [str(x) if isinstance(x, Path) else x for x in v]
        out[k] = v
    return out


def _result_settings(self) -> dict:
    """The settings that change the arrays written (inputs to the hash); strategy parameters that
    do not apply to the denoising strategy are left out."""
    from bidsapp.core.confounds import inapplicable_parameters

    unused = set(inapplicable_parameters(self.denoise, dict.fromkeys(STRATEGY_PARAMETERS, True), self.confounds))
    return {k: v for k, v in self.to_dict().items() if k not in NON_RESULT_FIELDS | unused}


def _configuration_hash(self) -> str:
    """SHA-256 (first 16 hex) of the result-affecting settings."""
    blob = json.dumps(self.result_settings(), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _desc_label(self) -> str:
    """``desc`` entity of the outputs: ``--desc``, else the denoising strategy (``ica_aroma`` -> ``icaaroma``)."""
    from bidsapp.bids.naming import desc_label

    return self.desc or desc_label(self.denoise)


def _field(option):
    default = MISSING if option.default is REQUIRED else option.default
    return option.name, object, field(default=default, metadata={"option": option})


_ORDERED = sorted(OPTIONS, key=lambda o: o.default is not REQUIRED)  # fields without a default come first
Settings = make_dataclass(
    "Settings", [_field(o) for o in _ORDERED], frozen=True,
    namespace={"desc_label": property(_desc_label), "to_dict": _to_dict, "result_settings": _result_settings,
               "configuration_hash": _configuration_hash,
               "__doc__": "Options of one invocation (CLI, config file and defaults merged); one field per row of "
                          ":data:`bidsapp.options.OPTIONS`, which documents each."})

Settings.__module__ = __name__
SETTING_NAMES = {f.name for f in fields(Settings)}
