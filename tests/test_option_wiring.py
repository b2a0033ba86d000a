"""Every option of the table reaches the step it names, and only that step.

For each option, each valid non-default value (its other choices, the other boolean, or its row's
``example``) is set and the run's workflow graph is built (not run): the inputs of the nodes of the
option's steps must change (for at least one value), the other nodes' inputs must not. A new option
whose row names a step it does not reach (or reaches a step its row does not name) fails here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bidsapp.core.names import STRATEGIES
from bidsapp.options import NODE_STEPS, OPTIONS, REQUIRED, STEPS, Option, step_specs
from bidsapp.settings import NON_RESULT_FIELDS, SETTING_NAMES, Settings
from bidsapp.workflows.base import RunPlan, init_run_wf

NODE_NAMES = {"mask": "mask", "masking": "masking", "cleaning": "cleaning", "segmentation": "segmentation",
              "outputs": "derivatives"}
#: sink inputs every hashed option changes (so they say nothing about wiring)
DERIVED = ("settings", "configuration_hash")


def alternatives(option: Option) -> list:
    """Valid values other than the default: other choices, the other boolean, or the row's example."""
    if option.choices is not None:
        default = option.parser_default
        others = [c for c in option.choices if c != default and not (option.is_list and [c] == default)]
        values = [None if option.none_word and c == "none" else c for c in others]
        return [(v,) for v in values] if option.is_list else values
    if option.action in ("store_true", "store_false", "boolean_optional"):
        return [not option.default]
    return [] if option.example is None else [option.example]


def base_settings(**changes) -> Settings:
    return dataclasses.replace(Settings(bids_dir=Path("/data/bids"), output_dir=Path("/data/out")), **changes)


def built_inputs(s: Settings) -> dict[str, dict]:
    """Each node's inputs in the graph built for one run under settings ``s`` (plus the collection spec)."""
    specs = {step: dict(spec) for step, spec in step_specs(s).items() if step in NODE_STEPS}
    t_r = s.t_r if s.t_r is not None else 2.0  # the run's JSON would give it
    for step in ("cleaning", "segmentation", "outputs"):
        specs[step]["t_r"] = t_r
    specs["outputs"]["entities"] = {"subject": "01", "task": "rest"}
    specs["provenance"] = {"files": {"bold": "bold.nii.gz"}, "roots": {"raw": "/data/bids"}}
    plan = RunPlan(name="sub01_wf", inputs={"bold_file": "bold.nii.gz"}, specs=specs,
                   mem_gb=dict.fromkeys([*NODE_STEPS, "provenance", "report", "derivatives"], 0.1))
    wf = init_run_wf(plan)
    out = {step: wf.get_node(node).inputs.get() for step, node in NODE_NAMES.items()}
    out["outputs"] = {k: v for k, v in out["outputs"].items() if k not in DERIVED}
    out["collection"] = step_specs(s)["collection"]
    return out


def test_table_and_settings_agree():
    assert SETTING_NAMES == {o.name for o in OPTIONS}
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    assert len({f for o in OPTIONS for f in o.flags}) == sum(len(o.flags) for o in OPTIONS)
    for o in OPTIONS:
        assert o.steps and set(o.steps) <= set(STEPS), o.name
        assert o.hashed == (o.name not in NON_RESULT_FIELDS)
        assert o.hashed or not set(o.steps) & {"mask", "masking", "cleaning", "segmentation"}, \
            f"{o.name} feeds a computing node but is not hashed"
        assert alternatives(o) or o.steps == ("execution",) or o.default is REQUIRED or o.derived, \
            f"{o.name}: give the row an example value"


# derived rows (no flag; e.g. atlas_template, set per run from --atlas NAME) are checked end to end by their
# option's own tests (tests/test_template_atlases.py)
@pytest.mark.parametrize("option", [o for o in OPTIONS if o.default is not REQUIRED and not o.derived],
                         ids=lambda o: o.name)
def test_each_option_reaches_exactly_its_steps(option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # example files (atlas.nii.gz, ...) must exist for the nodes' File inputs
    reached: set[str] = set()
    for value in alternatives(option):
        if isinstance(value, Path):
            value.touch()
        # a strategy parameter changes nothing under a strategy that does not use it: try each strategy
        contexts = [{}] + [{"denoise": d} for d in STRATEGIES if d != option.default]
        for context in contexts:
            before = base_settings(**context)
            after = dataclasses.replace(before, **{option.name: value})
            if not option.hashed or before.configuration_hash() != after.configuration_hash():
                break
        else:
            pytest.fail(f"--{option.name} {value!r} never changes the configuration hash, yet its row says hashed")
        old, new = built_inputs(before), built_inputs(after)
        changed = {step for step in old if old[step] != new[step]}
        assert changed <= set(option.steps), f"{option.name}={value!r} changes {sorted(changed)}, " \
            f"its row says {sorted(option.steps)}"
        reached |= changed
    assert reached == set(option.steps) & {*NODE_STEPS, "collection"}, \
        f"{option.name} reaches {sorted(reached)}, its row says {sorted(option.steps)}"


def test_plan_run_keeps_every_spec_value(demo, tmp_path):
    """The per-run plan adds the run's values to the specs and drops none of the options' values."""
    from bidsapp.bids.collect import collect_runs
    from bidsapp.cli.plan import plan_run

    root, _ = demo
    s = base_settings(bids_dir=root, output_dir=tmp_path / "out", fmriprep_dir=root / "derivatives" / "fmriprep",
                      denoise="scrubbing", fd_threshold=0.4, trial_estimates="lss", hrf_lag=4.0, mem_gb=8.0)
    run = collect_runs(**step_specs(s)["collection"])[0]
    plan = plan_run(run, s, None)
    run_values = {"t_r", "space", "column_args"}  # resolved per run (the BOLD JSON, its space, its column space)
    for step in NODE_STEPS:
        for key, value in step_specs(s)[step].items():
            if key not in run_values:
                assert plan.specs[step][key] == value, (step, key)
    # the run's column space keeps the options it consumes (its ``options``), with their values
    column_args = plan.specs["masking"]["column_args"]
    assert column_args.items() <= step_specs(s)["masking"]["column_args"].items()
    assert plan.specs["cleaning"]["strategy_params"]["fd_threshold"] == 0.4
    assert plan.specs["segmentation"]["t_r"] == run.metadata["RepetitionTime"]


def test_hidden_flags_parse_but_stay_out_of_help_and_boutiques(monkeypatch, tmp_path):
    """A row's hidden spelling (e.g. BIDS Apps' --participant_label) parses to the same setting, undocumented."""
    from bidsapp.cli import parser as cli_parser
    from bidsapp.cli.boutiques import descriptor

    rows = tuple(dataclasses.replace(o, hidden_flags=("--participant_label",)) if o.name == "participant_label"
                 else o for o in OPTIONS)
    monkeypatch.setattr(cli_parser, "OPTIONS", rows)
    argv = [str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "--mem-gb", "1", "--nprocs", "1"]
    assert cli_parser.parse_args([*argv, "--participant_label", "01", "02"]).participant_label == ("01", "02")
    assert cli_parser.parse_args(argv).participant_label == ()
    assert "--participant_label" not in cli_parser.build_parser().format_help()
    ids = [i["id"] for i in descriptor()["inputs"]]
    assert ids.count("participant_label") == 1 and len(ids) == len(set(ids))
