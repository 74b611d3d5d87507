"""The default, offline expander: brief + style guide joined by fixed rules. Free and deterministic,
so `make demo` and the tests need no network; the LLM expander replaces it with `ASSET_PIPELINE_PROMPTS=llm`.
"""

from __future__ import annotations

from asset_pipeline.catalog.spec import MAX_PROMPT_CHARS
from asset_pipeline.prompting.request import PromptRequest
from asset_pipeline.prompting.value import PromptValue


def template_prompt(request: PromptRequest) -> PromptValue:
    """`<brief>, <style guide sentences as phrases>`; negatives: the entry's plus the style's `avoid`."""
    phrases = [request.brief.rstrip(" .")]
    for line in request.style_guide.replace("\n", ". ").split(". "):
        phrase = line.strip(" .;,-")
        if phrase and phrase.lower() not in (p.lower() for p in phrases):
            phrases.append(phrase)
    prompt = ", ".join(phrases)[:MAX_PROMPT_CHARS].rstrip(", ")
    negatives = [part for part in (request.negative_prompt, request.avoid) if part]
    return PromptValue(prompt=prompt, negative_prompt=", ".join(negatives)[:MAX_PROMPT_CHARS])
