"""A ComfyUI workflow file (API format) and its mapping: load, check, hash, and fill in one request.

The user exports a workflow with ComfyUI's "Save (API Format)" and points
`ASSET_PIPELINE_COMFYUI_WORKFLOW` at it. A sidecar file next to it, `<stem>.mapping.yaml` (or
`.yml` / `.json`), says which node input receives each catalog field and which node's output is
the image:

    prompt: {node: "6", input: text}
    negative_prompt: {node: "7", input: text}     # optional, like seed/steps/guidance/width/height
    output: {node: "9"}

The workflow's canonical content hash and the mapping form the request's `variant`, so an edited
workflow makes its images stale and an unchanged one is a cache hit. Checks against a server's
`/object_info` run before anything is queued (`check_against`), one clear error per kind of fault.
Pure logic: no I/O beyond reading the two files.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.generation.request import GenerationRequest

VARIABLE = "ASSET_PIPELINE_COMFYUI_WORKFLOW"
DEFAULT_WORKFLOW = Path(__file__).parent / "workflows" / "sdxl_text_to_image.json"
MAPPING_SUFFIXES = (".mapping.yaml", ".mapping.yml", ".mapping.json")
MAX_WORKFLOW_BYTES = 5 * 1024 * 1024
FIELDS = ("prompt", "negative_prompt", "seed", "width", "height", "steps", "guidance")


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str
    input: str


class OutputTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str


class WorkflowMapping(BaseModel):
    """Where each catalog field goes; only `prompt` and `output` are required."""

    model_config = ConfigDict(extra="forbid")
    prompt: Target
    negative_prompt: Target | None = None
    seed: Target | None = None
    width: Target | None = None
    height: Target | None = None
    steps: Target | None = None
    guidance: Target | None = None
    output: OutputTarget

    def targets(self) -> dict[str, Target]:
        return {name: target for name in FIELDS if (target := getattr(self, name)) is not None}


@dataclass(frozen=True)
class Workflow:
    path: Path
    nodes: dict[str, dict[str, Any]]
    mapping: WorkflowMapping
    content_hash: str  # SHA-256 of the workflow's canonical JSON

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def variant(self) -> str:
        """What the request hash adds for this workflow: its content and where the fields go."""
        mapping = json.dumps(self.mapping.model_dump(exclude_none=True), sort_keys=True, separators=(",", ":"))
        return f"comfyui-workflow:{self.content_hash};mapping:{mapping}"

    def title(self, node_id: str) -> str:
        """A node's title in the editor, else its class: the progress stage shown on the hub."""
        node = self.nodes.get(node_id, {})
        meta = node.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        return str(title or node.get("class_type") or f"node {node_id}")[:80]

    def stage(self, node_id: str) -> str:
        """A stage name unique to the node (two samplers may share a title)."""
        title = self.title(node_id)
        same = [nid for nid in self.nodes if self.title(nid) == title]
        return title if len(same) <= 1 else f"{title} #{node_id}"

    def planned_stages(self, request: GenerationRequest) -> list[tuple[str, int]]:
        """Expected steps per sampler node, in workflow order: the ETA spans all of them."""
        prompt = self.prompt_for(request)
        planned = []
        for node_id, node in prompt.items():
            steps = node.get("inputs", {}).get("steps")
            if "sampler" in str(node.get("class_type", "")).lower() and isinstance(steps, int) and steps > 0:
                planned.append((self.stage(node_id), steps))
        return planned

    def prompt_for(self, request: GenerationRequest) -> dict[str, Any]:
        """The workflow with the request's fields written into the mapped inputs."""
        prompt = copy.deepcopy(self.nodes)
        values = {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": request.seed,
                  "width": request.width, "height": request.height, "steps": request.steps,
                  "guidance": request.guidance}
        for name, target in self.mapping.targets().items():
            prompt[target.node]["inputs"][target.input] = values[name]
        return prompt

    def check_against(self, object_info: Any, *, server: str) -> None:
        """Refuse a workflow `server` cannot run, before anything is queued: unknown node classes,
        mapped inputs the node's class does not declare, an output node that makes no image."""
        where = f"{self.path}"
        if not isinstance(object_info, dict):
            raise ConfigurationError(VARIABLE, f"{where}: {server} answered /object_info with no node list")
        unknown = sorted({f"{node['class_type']} (node {nid})" for nid, node in self.nodes.items()
                          if node["class_type"] not in object_info})
        if unknown:
            raise ConfigurationError(VARIABLE, f"{where}: node classes not installed on {server}: {', '.join(unknown)}")
        missing = []
        for name, target in self.mapping.targets().items():
            klass = self.nodes[target.node]["class_type"]
            declared = _declared_inputs(object_info[klass])
            if target.input not in declared:
                missing.append(f"{name} -> node {target.node} ({klass}) has no input '{target.input}'")
        if missing:
            raise ConfigurationError(VARIABLE, f"{where}: the mapping points at inputs {server} does not know: "
                                     + "; ".join(missing))
        output = self.mapping.output.node
        info = object_info[self.nodes[output]["class_type"]]
        takes_image = any(_input_type(spec) == "IMAGE" for spec in _declared_inputs(info).values())
        if not (isinstance(info, dict) and info.get("output_node") and takes_image):
            raise ConfigurationError(
                VARIABLE, f"{where}: no image output: the mapping's output node {output} "
                f"({self.nodes[output]['class_type']}) is not an output node that saves images on {server} "
                "(use SaveImage or PreviewImage)")


def load_workflow(path: str | Path | None, mapping_path: str | Path | None = None) -> Workflow:
    """The workflow at `path` (None: the bundled SDXL one) and its sidecar mapping, checked offline."""
    file = Path(path).expanduser() if path else DEFAULT_WORKFLOW
    nodes = _read_nodes(file)
    mapping_file = Path(mapping_path).expanduser() if mapping_path else _sidecar(file)
    mapping = _read_mapping(mapping_file)
    problems = []
    named: list[tuple[str, Target | OutputTarget]] = [*mapping.targets().items(), ("output", mapping.output)]
    for name, target in named:
        if target.node not in nodes:
            problems.append(f"{name} -> node {target.node} is not in the workflow")
        elif isinstance(target, Target) and target.input not in nodes[target.node].get("inputs", {}):
            problems.append(f"{name} -> node {target.node} ({nodes[target.node]['class_type']}) has no input "
                            f"'{target.input}'")
    if problems:
        raise ConfigurationError(VARIABLE, f"{mapping_file}: the mapping points at missing nodes or inputs: "
                                 + "; ".join(problems))
    canonical = json.dumps(nodes, sort_keys=True, separators=(",", ":"))
    return Workflow(file, nodes, mapping, hashlib.sha256(canonical.encode()).hexdigest())


def _read_nodes(file: Path) -> dict[str, dict[str, Any]]:
    try:
        if file.stat().st_size > MAX_WORKFLOW_BYTES:
            raise ConfigurationError(VARIABLE, f"{file}: larger than {MAX_WORKFLOW_BYTES // 1024 // 1024} MB")
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(VARIABLE, f"{file}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(VARIABLE, f"{file}: not JSON ({str(exc)[:120]})") from None
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        raise ConfigurationError(VARIABLE, f"{file}: this is ComfyUI's editor format; export the workflow with "
                                 "'Save (API Format)'")
    if not isinstance(data, dict) or not data:
        raise ConfigurationError(VARIABLE, f"{file}: an API-format workflow is a JSON object of nodes")
    for node_id, node in data.items():
        if not (isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)):
            raise ConfigurationError(VARIABLE, f"{file}: node {str(node_id)[:40]} needs a 'class_type' string and an "
                                     "'inputs' object")
    return data


def _sidecar(file: Path) -> Path:
    base = file.with_suffix("")
    for suffix in MAPPING_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    raise ConfigurationError(VARIABLE, f"{file}: no mapping beside it (expected {base.name}{MAPPING_SUFFIXES[0]} "
                             "saying which node inputs get the prompt, seed, size... and which node is the image)")


def _read_mapping(file: Path) -> WorkflowMapping:
    try:
        text = file.read_text(encoding="utf-8")[:MAX_WORKFLOW_BYTES]
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise ConfigurationError(VARIABLE, f"{file}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigurationError(VARIABLE, f"{file}: not valid {file.suffix[1:].upper()} ({str(exc)[:120]})") from None
    try:
        return WorkflowMapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigurationError(VARIABLE, f"{file}: field '{field}': {first['msg']}") from None


def _declared_inputs(info: Any) -> dict[str, Any]:
    inputs = info.get("input") if isinstance(info, dict) else None
    declared: dict[str, Any] = {}
    if isinstance(inputs, dict):
        for group in ("required", "optional"):
            if isinstance(inputs.get(group), dict):
                declared.update(inputs[group])
    return declared


def _input_type(spec: Any) -> Any:
    return spec[0] if isinstance(spec, list) and spec else None
