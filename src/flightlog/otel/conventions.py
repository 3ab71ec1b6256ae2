"""Attribute names: OTel GenAI, OpenInference, Traceloop/OpenLLMetry, the Vercel AI SDK,
and Flightlog's own ``flightlog.*``.

OTel GenAI: https://opentelemetry.io/docs/specs/semconv/gen-ai/ (spans, events).
OpenInference: https://arize-ai.github.io/openinference/spec/semantic_conventions.html
Traceloop/OpenLLMetry: ``traceloop.*`` and the pre-1.37 indexed ``gen_ai.prompt.N.*`` keys.
Vercel AI SDK: https://ai-sdk.dev/docs/ai-sdk-core/telemetry (``ai.*``).
Langfuse (SDK v3 and later, OpenTelemetry-based): ``langfuse.observation.*``, ``langfuse.trace.*``.

Decoding maps by convention, never by framework name: each list below is read in order, so a
framework not named here comes out right when it follows one of these conventions.
"""

from __future__ import annotations

import hashlib

# -- OTel GenAI semantic conventions --------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
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
# Pre-1.37 GenAI usage names, still emitted by several instrumentations.
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
# GenAI events carrying content (the span's own attributes win when both are present).
GEN_AI_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
GEN_AI_INPUT_EVENTS = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.content.prompt",
    }
)
GEN_AI_OUTPUT_EVENTS = frozenset({"gen_ai.choice", "gen_ai.content.completion"})

GEN_AI_OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
    "retrieval": "retrieval",
    "invoke_workflow": "chain",
}
# ``{gen_ai.operation.name} {name}``: how GenAI span names are formed.
GEN_AI_SPAN_NAME_PREFIXES = tuple(f"{op} " for op in GEN_AI_OPERATION_KINDS)

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
OI_GRAPH_NODE_ID = "graph.node.id"
OI_GRAPH_NODE_PARENT_ID = "graph.node.parent_id"
OI_METADATA = "metadata"  # JSON text; LangGraph puts ``langgraph_node`` in it
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

# -- Traceloop / OpenLLMetry -----------------------------------------------------------------
TL_SPAN_KIND = "traceloop.span.kind"  # workflow | task | agent | tool
TL_ENTITY_NAME = "traceloop.entity.name"
TL_ENTITY_INPUT = "traceloop.entity.input"
TL_ENTITY_OUTPUT = "traceloop.entity.output"
TL_WORKFLOW_NAME = "traceloop.workflow.name"
TL_LLM_REQUEST_TYPE = "llm.request.type"  # chat | completion | embedding
TL_USAGE_TOTAL = "llm.usage.total_tokens"
TRACELOOP_KINDS = {"workflow": "chain", "task": "function", "agent": "agent", "tool": "tool"}
GEN_AI_PROMPT = "gen_ai.prompt"  # indexed: gen_ai.prompt.0.role, gen_ai.prompt.0.content
GEN_AI_COMPLETION = "gen_ai.completion"

# -- Vercel AI SDK -----------------------------------------------------------------------------
AI_OPERATION_ID = "ai.operationId"
AI_FUNCTION_ID = "ai.telemetry.functionId"
AI_TOOL_NAME = "ai.toolCall.name"
AI_TOOL_ARGS = "ai.toolCall.args"
AI_TOOL_INPUT = "ai.toolCall.input"
AI_TOOL_RESULT = "ai.toolCall.result"
AI_TOOL_OUTPUT = "ai.toolCall.output"
AI_PROMPT_MESSAGES = "ai.prompt.messages"
AI_PROMPT = "ai.prompt"
AI_RESPONSE_TEXT = "ai.response.text"
AI_RESPONSE_TOOL_CALLS = "ai.response.toolCalls"
AI_RESPONSE_OBJECT = "ai.response.object"
AI_MODEL_ID = "ai.model.id"
AI_MODEL_PROVIDER = "ai.model.provider"
AI_USAGE_INPUT = ("ai.usage.inputTokens", "ai.usage.promptTokens")
AI_USAGE_OUTPUT = ("ai.usage.outputTokens", "ai.usage.completionTokens")


def ai_operation_kind(op: str) -> str | None:
    """Step kind of a Vercel AI SDK span from ``ai.operationId``: the provider call
    (``ai.generateText.doGenerate``) is an LLM call, ``ai.toolCall`` a tool, the
    ``ai.generateText``-style call around them a chain."""
    if not op.startswith("ai."):
        return None
    if op == "ai.toolCall":
        return "tool"
    if op.endswith((".doGenerate", ".doStream", ".doEmbed")):
        return "llm"
    return "chain"


# -- Langfuse (its SDK's observations: @observe, start_as_current_observation, integrations) ------
LF_OBSERVATION_TYPE = "langfuse.observation.type"
LF_INPUT = "langfuse.observation.input"  # JSON text, or the text itself
LF_OUTPUT = "langfuse.observation.output"
LF_MODEL = "langfuse.observation.model.name"
LF_USAGE_DETAILS = "langfuse.observation.usage_details"  # JSON text: {"input": n, ...}
LF_TRACE_NAME = "langfuse.trace.name"
LANGFUSE_KINDS = {
    "generation": "llm",
    "embedding": "llm",
    "agent": "agent",
    "tool": "tool",
    "chain": "chain",
    "retriever": "retrieval",
    "evaluator": "guardrail",
    "guardrail": "guardrail",
    "span": "function",
    "event": "function",
}
# usage_details keys, first present wins: Langfuse's own, then the provider's as passed on.
LF_USAGE_INPUT = ("input", "prompt_tokens", "input_tokens")
LF_USAGE_OUTPUT = ("output", "completion_tokens", "output_tokens")

# -- pydantic-ai / Logfire -----------------------------------------------------------------------
LOGFIRE_FINAL_RESULT = "final_result"

# Inputs and outputs: first present wins (attributes before events).
INPUT_KEYS = (
    "input.value",
    "gen_ai.input.messages",
    "gen_ai.tool.call.arguments",
    TL_ENTITY_INPUT,
    AI_TOOL_ARGS,
    AI_TOOL_INPUT,
    AI_PROMPT_MESSAGES,
    AI_PROMPT,
    LF_INPUT,
)
OUTPUT_KEYS = (
    "output.value",
    "gen_ai.output.messages",
    "gen_ai.tool.call.result",
    TL_ENTITY_OUTPUT,
    AI_TOOL_RESULT,
    AI_TOOL_OUTPUT,
    AI_RESPONSE_TOOL_CALLS,
    AI_RESPONSE_TEXT,
    AI_RESPONSE_OBJECT,
    LOGFIRE_FINAL_RESULT,
    LF_OUTPUT,
)

# Attribute names that carry a version of what a step ran (prompt, template, model, code):
# the last dotted segment of the key. Counts and content (``llm.token_count.prompt``,
# ``ai.prompt.messages``) are not versions.
VERSION_SEGMENTS = frozenset(
    {"version", "prompt_version", "template_version", "revision", "prompt_id", "template_id"}
)


def is_version_key(key: str) -> bool:
    """Whether an attribute names a version (``prompt_version``, ``service.version``,
    OpenInference's ``llm.prompt_template.version`` and ``.template``)."""
    low = key.lower()
    return low.rsplit(".", 1)[-1] in VERSION_SEGMENTS or low.endswith("prompt_template.template")


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
        *INPUT_KEYS,
        *OUTPUT_KEYS,
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
