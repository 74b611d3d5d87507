"""`python -m asset_pipeline_testing.fake_openai PORT [DELAY_S]`: serve the fake LLM in its own process
(benchmarks run it apart so its CPU is not counted as orchestration)."""

import sys

import uvicorn

from asset_pipeline_testing.briefs import LLM_KEY
from asset_pipeline_testing.fake_openai.server import FakeOpenAIState, build_app

if __name__ == "__main__":
    port = int(sys.argv[1])
    state = FakeOpenAIState(api_key=LLM_KEY, delay_s=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    uvicorn.run(build_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False)
