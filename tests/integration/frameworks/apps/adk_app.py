"""Google ADK (``LlmAgent`` on LiteLLM), traced by ADK's own OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.integration.frameworks.apps import common


def main() -> None:
    llm, otlp, record = common.args()
    # Content in spans, as a user of Flightlog turns it on (ADK 2 records none by default).
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    recorder = common.Recorder() if record else None
    provider = common.tracer_provider(otlp, "claims-adk", recorder)

    from google.adk.agents import LlmAgent
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    def lookup_policy(claim_id: str) -> str:
        """Look up the insurance policy that covers a claim; returns the policy as JSON text."""
        return common.lookup_policy(claim_id)

    def compute_payout(policy: str) -> str:
        """Compute the payout of a claim from its policy (the JSON text lookup_policy returned)."""
        return common.compute_payout(policy)

    model = LiteLlm(model="openai/gpt-4o-mini", api_base=llm, api_key="sk-test")

    def caught(tool: Any, args: Any, tool_context: Any, error: Exception) -> dict[str, Any] | None:
        """The "swallowed" scenario: the tool's exception goes back to the model."""
        return (
            {"error": f"{type(error).__name__}: {error}"}
            if common.scenario == "swallowed"
            else None
        )

    def one(scenario: str) -> str:
        agent = LlmAgent(
            on_tool_error_callback=caught,
            name="claims_agent",
            model=model,
            instruction="You settle insurance claims with the tools.",
            tools=[lookup_policy, compute_payout],
        )
        runner = InMemoryRunner(agent=agent, app_name="claims")

        async def go() -> str:
            session = await runner.session_service.create_session(app_name="claims", user_id="u")
            message = types.Content(role="user", parts=[types.Part(text=common.QUESTION)])
            text = ""
            async for event in runner.run_async(
                user_id="u", session_id=session.id, new_message=message
            ):
                if event.content and event.content.parts:
                    text = "".join(p.text or "" for p in event.content.parts) or text
            return text

        return asyncio.run(go())

    common.run_all("adk", one, provider, recorder, record)


if __name__ == "__main__":
    main()
