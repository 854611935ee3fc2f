"""Flow files: the schema and graph checks, precise errors, and `manage.py flows validate`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr_cbt.callflow import FlowError, load_flow, load_flows, spec
from ivr_cbt.cli import flows_validate_command
from ivr_cbt.prompts import Catalogue

ROOT = Path(__file__).resolve().parent.parent
BROKEN = sorted((Path(__file__).parent / "flows_broken").glob("*.yaml"))


def expectation(path: Path) -> str:
    return path.read_text().splitlines()[0].removeprefix("# expect: ")


@pytest.mark.parametrize("path", [p for p in BROKEN if p.read_text().startswith("# expect: ")], ids=lambda p: p.stem)
def test_a_broken_flow_is_refused_with_a_precise_error(path):
    with pytest.raises(FlowError) as info:
        load_flow(path, ROOT / "flows" / "flow.schema.json")
    message = str(info.value)
    expected = expectation(path)
    line, _, rest = expected.partition(": ")
    if line.isdigit():  # the expectation names the line the problem is on
        assert f"{path}:{line}: {rest}" in message
    else:
        assert expected in message
    assert all(problem.file == str(path) for problem in info.value.problems)


def test_every_shipped_flow_is_valid_and_its_prompts_exist_in_every_language():
    flows = load_flows(ROOT / "flows")
    assert "weekly_checkin" in flows
    catalogue = Catalogue.load(ROOT / "prompts")
    assert set(catalogue.languages) >= {"en", "es"}
    for flow in flows.values():
        assert flow.prompt_ids(), flow.id
        assert catalogue.missing(flow.prompt_ids()) == []


def test_every_language_defines_the_same_prompt_ids():
    catalogue = Catalogue.load(ROOT / "prompts")
    reference = catalogue.ids("en")
    for language in catalogue.languages:
        assert catalogue.ids(language) == reference, language


def test_the_weekly_check_in_asks_the_clinical_items_in_order_with_their_scales():
    flow = load_flow(ROOT / "flows" / "weekly_checkin.yaml")
    assert flow.item_keys() == ["pain_avg", "sleep_quality", "steps_avg", "practice_days", "safety"]
    assert (flow.items["pain_avg"].min, flow.items["pain_avg"].max) == (0, 10)
    assert flow.items["pain_avg"].direction == "higher_is_worse"
    assert flow.items["sleep_quality"].direction == "higher_is_better"
    assert flow.items["steps_avg"].max == 99999
    assert flow.items["practice_days"].max == 7
    assert flow.items["safety"].anchors == {"1": "yes", "2": "no"}


def test_yes_and_no_stay_text_in_flows(tmp_path):
    """YAML 1.1 would read these as booleans; our loader must not."""
    path = tmp_path / "yes_no.yaml"
    path.write_text(
        (ROOT / "tests" / "flows_broken" / "branch_out_of_range.yaml").read_text().replace("equals: 3", "equals: 1")
    )
    flow = load_flow(path, ROOT / "flows" / "flow.schema.json")
    assert flow.items["safety"].anchors == {"1": "yes", "2": "no"}


@pytest.mark.parametrize("name", ["weekly_checkin", "daily_checkin"])
def test_every_input_node_has_no_input_and_invalid_paths(name):
    flow = load_flow(ROOT / "flows" / f"{name}.yaml")
    asking = [n for n in flow.nodes.values() if isinstance(n, spec.Identify | spec.Ask)]
    menus = [n for n in flow.nodes.values() if isinstance(n, spec.Menu)]
    assert len(asking) == len(flow.items) + 1
    assert all(n.noinput and n.invalid for n in asking)
    assert menus and all(n.default in flow.nodes for n in menus)


def _validate(*args, env=None):
    return CliRunner().invoke(flows_validate_command, [str(a) for a in args], env=env)


def test_flows_validate_passes_the_shipped_flows():
    result = _validate()
    assert result.exit_code == 0, result.output
    assert "ok  " in result.output and "weekly_checkin.yaml" in result.output


def test_flows_validate_reports_each_problem_and_fails():
    result = _validate(*BROKEN)
    assert result.exit_code == 1
    for path in BROKEN:
        if path.stem == "missing_prompt":
            assert "prompt 'ask_favourite_colour' is missing in prompts/en/prompts.yaml" in result.output
        else:
            line, _, rest = expectation(path).partition(": ")
            assert (rest if line.isdigit() else expectation(path)) in result.output, path.stem
    assert "problem(s) found" in result.output


def test_flows_validate_reports_a_prompt_missing_in_one_language(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    es = prompts / "es" / "prompts.yaml"
    es.write_text("\n".join(line for line in es.read_text().splitlines() if not line.startswith("ask_safety:")))
    result = _validate(ROOT / "flows" / "weekly_checkin.yaml", env={"PROMPTS_DIR": str(prompts)})
    assert result.exit_code == 1
    assert "prompt 'ask_safety' is missing in prompts/es/prompts.yaml" in result.output
