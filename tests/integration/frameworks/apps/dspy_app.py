"""DSPy (a ``dspy.ReAct`` agent on ``dspy.LM``, through LiteLLM), traced by
openinference-instrumentation-dspy, with openinference-instrumentation-litellm beside it as
DSPy's OpenInference guide advises: the DSPy instrumentation's ``LM.__call__`` spans carry
the prompt and completion but no token counts; LiteLLM's ``completion`` spans carry them.

DSPy prompts in its own text protocol of named fields (``[[ ## next_tool_name ## ]]``), not
with the chat API's tools; the scripted endpoint answers in it. ``ReAct`` catches every
tool exception and hands it to the model as the observation ("Execution error in ..."), so
every fault is handled inside the run. Runs from a venv of its own: see
tests/data/otlp/README.md.
"""

from __future__ import annotations

import os

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-dspy", recorder)

    import dspy
    from openinference.instrumentation.dspy import DSPyInstrumentor
    from openinference.instrumentation.litellm import LiteLLMInstrumentor

    DSPyInstrumentor().instrument(tracer_provider=provider)
    LiteLLMInstrumentor().instrument(tracer_provider=provider)

    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text."""
        return common.lookup_policy(claim_id)

    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy (the JSON text lookup_policy returned)."""
        return common.compute_payout(policy)

    lm = dspy.LM("openai/gpt-4o-mini", api_base=llm, api_key="sk-test", cache=False, num_retries=0)
    dspy.configure(lm=lm)
    agent = dspy.ReAct("question -> answer", tools=[lookup_policy, compute_payout], max_iters=6)

    def one(scenario: str) -> str:
        return str(agent(question=common.QUESTION).answer)

    common.run_all("dspy", one, provider, recorder, record)


if __name__ == "__main__":
    main()
