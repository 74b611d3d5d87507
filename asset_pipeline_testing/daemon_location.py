"""A code location for daemon tests: the project's own definitions (sensors, schedules, assets,
settings from the environment), except that the placeholder backend fails the catalog ids listed in
the file that ASSET_PIPELINE_TEST_FAILING_FILE names. The file is read whenever a run builds its
backend, so a test can make partitions fail and then recover between runs, as a flaky provider would.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from asset_pipeline.definitions import build_defs
from asset_pipeline.generation.backend import ImageBackend
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline_testing.dagster_stack import FAILING_FILE_VARIABLE
from asset_pipeline_testing.helpers import FailingBackend


class FileFailingGenerator(ImageGenerator):
    """The real generator resource; its backend fails the ids listed in `failing_file`."""

    failing_file: str

    def build_backend(self) -> ImageBackend:
        path = Path(self.failing_file)
        return FailingBackend(set(path.read_text().split()) if path.exists() else set())


def _defs() -> dg.Definitions:
    base = build_defs()
    resources = dict(base.resources or {})
    generator = resources["image_generator"]
    fields = {name: getattr(generator, name) for name in type(generator).model_fields}
    resources["image_generator"] = FileFailingGenerator(**fields, failing_file=os.environ[FAILING_FILE_VARIABLE])
    return dg.Definitions(assets=base.assets, sensors=base.sensors, schedules=base.schedules, jobs=base.jobs,
                          resources=resources, executor=base.executor)


defs = _defs()
