"""Workflow files and mappings: checked offline when loaded, and against the server's /object_info
at resource setup of a real run, each fault one clear error naming the file, before anything is
queued; hostile files (editor format, garbage mapping) too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.generation.comfyui_servers import parse_urls
from asset_pipeline.generation.comfyui_workflow import DEFAULT_WORKFLOW, load_workflow
from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyui
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.helpers import materialize, write_catalog
from asset_pipeline_tests.generation.comfyui_support import comfy_defs, entries

MAPPING = DEFAULT_WORKFLOW.with_name("sdxl_text_to_image.mapping.yaml").read_text()


def workflow(tmp_path: Path, edit=lambda nodes: None, mapping: str = MAPPING) -> Path:
    nodes = json.loads(DEFAULT_WORKFLOW.read_text())
    edit(nodes)
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(nodes))
    (tmp_path / "flow.mapping.yaml").write_text(mapping)
    return path


def run_failure(result) -> str:
    return "\n".join(str(event.event_specific_data) for event in result.all_events if event.is_failure)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda nodes: nodes["4"].update(class_type="FancyLoraLoader"),
     "node classes not installed on http://127.0.0.1:{port}: FancyLoraLoader (node 4)"),
    (lambda nodes: nodes["3"]["inputs"].update(cfg_scale=7.0),
     "the mapping points at inputs http://127.0.0.1:{port} does not know: guidance -> node 3 (KSampler) has no input "
     "'cfg_scale'"),
    (lambda nodes: nodes["9"].update(class_type="SaveLatent", inputs={"samples": ["3", 0], "filename_prefix": "x"}),
     "no image output: the mapping's output node 9 (SaveLatent) is not an output node that saves images"),
])
def test_a_workflow_the_server_cannot_run_fails_setup_before_anything_is_queued(
    tmp_path: Path, data_dir: Path, instance, edit, expected: str
) -> None:
    mapping = MAPPING.replace("input: cfg}", "input: cfg_scale}") if "cfg_scale" in expected else MAPPING
    path = workflow(tmp_path, edit, mapping)
    with running_fake_comfyui(FakeComfyState(job_seconds=0.05)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(2))
        result = materialize(comfy_defs(catalog, data_dir, [server], comfyui_workflow=path), instance,
                             first="img-00", last="img-01")
        port = server.base_url.rsplit(":", 1)[1]
        assert not result.success
        message = run_failure(result)
        assert f"ASSET_PIPELINE_COMFYUI_WORKFLOW: {path}: " + expected.format(port=port) in message
        assert server.submitted == []


def test_mapping_faults_are_refused_when_the_workflow_loads(tmp_path: Path) -> None:
    path = workflow(tmp_path, mapping=MAPPING.replace('node: "5", input: width', 'node: "55", input: width'))
    with pytest.raises(ConfigurationError, match=r"flow.mapping.yaml: the mapping points at missing nodes or inputs: "
                       r"width -> node 55 is not in the workflow"):
        load_workflow(path)
    path = workflow(tmp_path, mapping=MAPPING.replace("input: seed", "input: noise_seed"))
    with pytest.raises(ConfigurationError, match=r"seed -> node 3 \(KSampler\) has no input 'noise_seed'"):
        load_workflow(path)


@pytest.mark.parametrize(("workflow_text", "mapping_text", "expected"), [
    ('{"nodes": [], "links": []}', MAPPING, "editor format; export the workflow with 'Save (API Format)'"),
    ("{not json", MAPPING, "flow.json: not JSON"),
    ('{"1": {"inputs": {}}}', MAPPING, "node 1 needs a 'class_type' string"),
    (None, "prompt: [unclosed", "flow.mapping.yaml: not valid YAML"),
    (None, "prompt: {node: '6', input: text}\n", "field 'output': Field required"),
    (None, MAPPING + "\nextra_field: 1\n", "field 'extra_field': Extra inputs are not permitted"),
    (None, "- a list\n", "field '(top level)'"),
])
def test_hostile_workflow_and_mapping_files_name_the_file_and_field(tmp_path: Path, workflow_text, mapping_text,
                                                                    expected: str) -> None:
    path = workflow(tmp_path, mapping=mapping_text)
    if workflow_text is not None:
        path.write_text(workflow_text)
    with pytest.raises(ConfigurationError) as raised:
        load_workflow(path)
    assert expected in str(raised.value) and str(raised.value).startswith("ASSET_PIPELINE_COMFYUI_WORKFLOW: ")


def test_a_workflow_without_a_mapping_or_a_file_is_refused(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely.json"
    lonely.write_text(DEFAULT_WORKFLOW.read_text())
    with pytest.raises(ConfigurationError, match="no mapping beside it"):
        load_workflow(lonely)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_workflow(tmp_path / "missing.json")
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (6 * 1024 * 1024))
    with pytest.raises(ConfigurationError, match="larger than 5 MB"):
        load_workflow(huge)


def test_server_url_lists_are_checked_entry_by_entry() -> None:
    assert parse_urls(" http://a:8188/, http://b:8188,,http://a:8188") == ["http://a:8188", "http://b:8188"]
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_COMFYUI_URL: 'ftp://x' is not"):
        parse_urls("http://a:8188,ftp://x")
    with pytest.raises(ConfigurationError, match="'http://user:pw@host' is not"):
        parse_urls("http://user:pw@host")
    with pytest.raises(ConfigurationError, match="no ComfyUI server URL"):
        parse_urls(" , ")


def test_the_workflow_and_its_mapping_are_in_the_request_hash(tmp_path: Path) -> None:
    bundled = load_workflow(None)
    same = load_workflow(workflow(tmp_path))
    assert same.variant == bundled.variant  # content, not the file name or formatting
    remapped = load_workflow(workflow(tmp_path, mapping=MAPPING.replace("negative_prompt: {node: \"7\", input: text}\n", "")))
    assert remapped.variant != bundled.variant
