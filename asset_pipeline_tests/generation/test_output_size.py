"""Which provider output sizes may be fitted to a spec's size, and the pixel limit of each request."""

from __future__ import annotations

import pytest

from asset_pipeline.generation.output_size import expected_size, max_output_pixels, size_problem

CAP = 40_000_000


@pytest.mark.parametrize(("actual", "spec"), [
    ((1024, 1024), (1024, 1024)), ((1024, 1024), (512, 512)), ((1344, 768), (1344, 768)),
    ((1536, 640), (1536, 640)), ((1568, 672), (1536, 640)), ((1216, 832), (1216, 832)), ((1152, 896), (1152, 896)),
    ((1000, 1000), (1024, 1024)),  # 2.4% upscale: within tolerance
])
def test_aspect_ratio_outputs_near_the_models_size_are_fitted(actual: tuple[int, int], spec: tuple[int, int]) -> None:
    assert size_problem(actual, width=spec[0], height=spec[1], size_input="aspect_ratio") is None


@pytest.mark.parametrize(("actual", "spec"), [
    ((1, 1), (1024, 1024)), ((10, 10), (1024, 1024)), ((512, 512), (1024, 1024)),  # would be blown up
    ((1024, 1024), (1344, 768)), ((768, 1344), (1344, 768)),  # another aspect ratio than the one sent
])
def test_outputs_far_from_the_request_are_refused(actual: tuple[int, int], spec: tuple[int, int]) -> None:
    problem = size_problem(actual, width=spec[0], height=spec[1], size_input="aspect_ratio")
    assert problem is not None and problem.startswith(f"returned {actual[0]}x{actual[1]}, expected about")
    assert f"to fit to {spec[0]}x{spec[1]}" in problem


def test_width_height_models_must_return_the_exact_size() -> None:
    assert size_problem((1344, 768), width=1344, height=768, size_input="width_height") is None
    assert size_problem((672, 384), width=1344, height=768, size_input="width_height") == "returned 672x384, expected 1344x768"


def test_the_pixel_limit_follows_the_request() -> None:
    assert expected_size(1024, 1024, "aspect_ratio") == (1024, 1024)
    assert expected_size(1344, 768, "aspect_ratio") == (1360, 768)  # ~1 MP at 16:9, sides a multiple of 16
    assert max_output_pixels(512, 512, "aspect_ratio", cap=CAP) == 4 * 1024 * 1024  # flux renders ~1 MP anyway
    assert max_output_pixels(1344, 768, "width_height", cap=CAP) == 4 * 1344 * 768
    assert max_output_pixels(2048, 2048, "width_height", cap=10_000_000) == 10_000_000
