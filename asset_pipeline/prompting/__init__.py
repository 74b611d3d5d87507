"""Prompts from briefs: the final prompt of each catalog entry, written by rules or by an LLM.

Plain Python, no Dagster (the `prompts` asset and the `prompt_writer` resource wire it): the
structured answer (`value`), the request and its hash (`request`), the offline `template`
expander, token prices (`pricing`), failure classes (`failures`), the OpenAI-compatible call
(`llm`), the answer cache (`cache`) and the metered writer that ties them to the ledger (`writer`).
"""
