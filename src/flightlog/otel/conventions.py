"""Attribute names: OTel GenAI, OpenInference, and Flightlog's own ``flightlog.*``.

OTel GenAI: https://opentelemetry.io/docs/specs/semconv/gen-ai/ (spans, events).
OpenInference: https://arize-ai.github.io/openinference/spec/semantic_conventions.html
"""

from __future__ import annotations

import hashlib

# -- OTel GenAI semantic conventions --------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # the older name of gen_ai.provider.name
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_EVALUATION_EVENT = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"

GEN_AI_OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
    "retrieval": "retrieval",
}

# -- OpenInference ---------------------------------------------------------------------------
OI_SPAN_KIND = "openinference.span.kind"
OI_INPUT_VALUE = "input.value"
OI_INPUT_MIME = "input.mime_type"
OI_OUTPUT_VALUE = "output.value"
OI_OUTPUT_MIME = "output.mime_type"
OI_LLM_MODEL_NAME = "llm.model_name"
OI_LLM_PROVIDER = "llm.provider"
OI_LLM_SYSTEM = "llm.system"
OI_TOKENS_PROMPT = "llm.token_count.prompt"
OI_TOKENS_COMPLETION = "llm.token_count.completion"
OI_COST_TOTAL = "llm.cost.total"
OI_TOOL_NAME = "tool.name"
OI_AGENT_NAME = "agent.name"
OI_SESSION_ID = "session.id"
OI_USER_ID = "user.id"

OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "CHAIN": "chain",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "TOOL": "tool",
    "AGENT": "agent",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "guardrail",
    "PROMPT": "function",
    "DECISION": "chain",
}

# Attributes whose values become payloads (stored once, content-addressed, truncated above
# the payload cap) rather than step attributes.
PAYLOAD_KEYS = frozenset(
    {
        OI_INPUT_VALUE,
        OI_OUTPUT_VALUE,
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
    }
)

# -- Flightlog's own attributes (what OTel has no name for) -----------------------------------
FL_RECORD = "flightlog.record"  # "run" | "step" | "carrier"
FL_OPEN = "flightlog.open"  # true when the record has no end time yet
FL_ATTRIBUTES = "flightlog.attributes"  # the record's attributes, as JSON text
FL_ERROR = "flightlog.error"  # ErrorInfo as JSON text
FL_INPUT_HASH = "flightlog.input_hash"
FL_OUTPUT_HASH = "flightlog.output_hash"
FL_RUN_WORKFLOW = "flightlog.run.workflow"
FL_RUN_STATUS = "flightlog.run.status"
FL_RUN_VERSION = "flightlog.run.version"
FL_RUN_OWNER = "flightlog.run.owner"
FL_RUN_SERVICE = "flightlog.run.service"
FL_RUN_REASON = "flightlog.run.reason"
FL_RUN_FAILED_STEP = "flightlog.run.failed_step_id"
FL_RUN_DECLARED_STEPS = "flightlog.run.declared_steps"
FL_RUN_SOURCE = "flightlog.run.source"
FL_STEP_KIND = "flightlog.step.kind"
FL_STEP_INDEX = "flightlog.step.index"
FL_STEP_OWNER = "flightlog.step.owner"
FL_STEP_STATUS = "flightlog.step.status"
FL_STEP_COST = "flightlog.step.cost"
FL_PAYLOAD_EVENT = "flightlog.payload"
FL_PAYLOAD_HASH = "flightlog.payload.hash"
FL_PAYLOAD_DATA = "flightlog.payload.data"
FL_PAYLOAD_SIZE = "flightlog.payload.size"
FL_PAYLOAD_TRUNCATED = "flightlog.payload.truncated"
FL_EDGE_EVENT = "flightlog.edge"
FL_EDGE_SOURCE = "flightlog.edge.source"
FL_EDGE_TARGET = "flightlog.edge.target"
FL_EDGE_KIND = "flightlog.edge.kind"
FL_EDGE_EVIDENCE = "flightlog.edge.evidence"
FL_EDGE_DETAIL = "flightlog.edge.detail"
FL_FINDING_ID = "flightlog.finding.id"
FL_FINDING_SEVERITY = "flightlog.finding.severity"
FL_FINDING_STEP = "flightlog.finding.step_id"
FL_FINDING_EVIDENCE = "flightlog.finding.evidence"
FL_FINDING_KIND = "flightlog.finding.kind"

# Step kind -> gen_ai.operation.name, written for other OTel backends' benefit.
KIND_OPERATIONS = {"llm": "chat", "agent": "invoke_agent", "tool": "execute_tool"}


def run_span_id(run_id: str) -> str:
    """The span id of a run's own (root) span: derived from the run id, never zero."""
    h = hashlib.sha256(b"flightlog-run:" + run_id.encode()).hexdigest()[:16]
    return h if int(h, 16) else "0000000000000001"
