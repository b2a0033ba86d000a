"""The atlases the container image prefetches: one list in code (``bidsapp-fetch-templates``' default), the same
set documented with sizes, each fetched at the resolution it names; a missing atlas names the command."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bidsapp.cli.fetch_templates import PREFETCHED_ATLASES, fetch_atlas, main

DOCS = Path(__file__).parents[1] / "docs" / "getting-started.md"


def _documented() -> tuple[list[tuple[str, str]], list[float], float]:
    """(space, --atlas value) of every row of the docs' table, the rows' sizes and the stated total (MB)."""
    text = DOCS.read_text()
    lines = text[text.index("<!-- prefetched-atlases:"):].splitlines()[1:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    rows = rows[: next(i for i, r in enumerate(rows) if len(r) < 5)]  # the table ends at the first other line
    atlases, sizes = [], []
    for space, atlas, descs, res, mb in rows[:-1]:
        atlases += [(space, f"{atlas}:desc-{desc}:res-{res}") for desc in descs.split()]
        sizes.append(float(mb))
    assert rows[-1][0] == "**total**"
    return atlases, sizes, float(rows[-1][-1].strip("*"))


def test_the_documented_set_is_the_fetched_set():
    atlases, sizes, total = _documented()
    assert sorted(atlases) == sorted(PREFETCHED_ATLASES) and len(set(atlases)) == len(atlases) == 35
    assert sum(sizes) == pytest.approx(total, abs=0.01)


class _RecordingApi:
    """TemplateFlow's ``api.get`` as seen by the fetch command: records each query, finds every image."""

    def __init__(self):
        self.calls = []

    def get(self, space, **query):
        self.calls.append((space, query))
        return [f"/tf/tpl-{space}_{query['suffix']}{query['extension']}"]


def test_default_fetch_asks_for_each_prefetched_atlas_at_2mm(monkeypatch):
    """Without --atlas, the default set (at res 2, with label tables); --atlas replaces it, --no-atlases drops it."""
    import bidsapp.cli.fetch_templates as fetch

    api = _RecordingApi()
    monkeypatch.setattr(fetch, "fetch_masks", lambda _api, res: 0)
    package = types.ModuleType("templateflow")  # never the real one: it may touch the network
    package.api = api
    monkeypatch.setitem(sys.modules, "templateflow", package)
    monkeypatch.setitem(sys.modules, "templateflow.api", api)
    assert main(["--resolution", "2"]) == 0
    images = {(space, q["atlas"], q["desc"]) for space, q in api.calls if q["extension"] == ".nii.gz"}
    wanted = {(space, value.split(":")[0], value.split(":")[1][5:]) for space, value in PREFETCHED_ATLASES}
    assert images == wanted
    assert all(q["resolution"] == 2 for _, q in api.calls if q["extension"] == ".nii.gz")
    assert all("resolution" not in q for _, q in api.calls if q["extension"] == ".tsv")
    api.calls.clear()
    assert main(["--atlas", "DiFuMo:desc-64dimensions", "--space", "MNI152NLin6Asym"]) == 0
    assert {(s, q["atlas"]) for s, q in api.calls} == {("MNI152NLin6Asym", "DiFuMo")}
    api.calls.clear()
    assert main(["--no-atlases"]) == 0 and api.calls == []


@pytest.mark.parametrize("value", ["Schaefer2018:desc-400Parcels7Networks", "DiFuMo:desc-128dimensions"])
def test_a_prefetched_atlas_missing_from_the_cache_names_its_fetch_command(tmp_path, value):
    """An image without the atlas (a cache filled elsewhere): one line naming the command that fetches it."""
    from bidsapp.core.atlases import resolve

    (tmp_path / "tpl-MNI152NLin2009cAsym").mkdir()
    with pytest.raises(ValueError) as err:
        resolve(value, "MNI152NLin2009cAsym", np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path)
    message = str(err.value)
    assert "\n" not in message and "not in the local TemplateFlow cache" in message
    assert message.endswith(f"bidsapp-fetch-templates --atlas {value} --space MNI152NLin2009cAsym")
    assert fetch_atlas(_RecordingApi(), "MNI152NLin2009cAsym", value) == 0  # and that command fetches it
