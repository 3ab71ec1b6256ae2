// The Vercel AI SDK (generateText with tools, several steps), traced by the SDK's own
// OpenTelemetry spans (experimental_telemetry), exported as OTLP/JSON by the OTLP HTTP
// exporter. Usage: node app.mjs LLM_URL OTLP_URL [RECORD_DIR]; runs the scenarios of
// apps/common.py in the same order, one trace each.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createOpenAI } from "@ai-sdk/openai";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { generateText, stepCountIs, tool } from "ai";
import { z } from "zod";

const [llm, otlp, recordDir] = process.argv.slice(2);
const SCENARIOS = ["ok_1", "ok_2", "ok_3", "empty", "error_json", "truncated", "raises", "swallowed"];
const GOOD_POLICY = '{"policy": "P-7", "coverage": "water damage from burst pipes", "limit": 5000}';
const QUESTION = "Settle claim C-7: look up its policy, then compute the payout.";
let scenario = "ok_1";

class Collector {
  constructor() { this.spans = []; this.count = 0; }
  export(spans, done) { this.spans.push(...spans); this.count += spans.length; done({ code: 0 }); }
  shutdown() { return Promise.resolve(); }
  forceFlush() { return Promise.resolve(); }
}
const collector = new Collector();
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "claims-vercel-ai" }),
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlp.replace(/\/$/, "")}/v1/traces` })),
    new SimpleSpanProcessor(collector),
  ],
});
provider.register(); // the async context manager: child spans find their parent
const tracer = provider.getTracer("claims-app");

function lookupPolicy({ claim_id }) {
  if (scenario === "empty") return "[]";
  if (scenario === "error_json") return '{"error": "policy service unavailable", "code": 503}';
  if (scenario === "truncated") return GOOD_POLICY.slice(0, 40);
  if (scenario === "raises" || scenario === "swallowed") {
    const err = new Error(`policy service unreachable while looking up ${claim_id}`);
    err.name = "ConnectionError";
    throw err;
  }
  return GOOD_POLICY;
}

function computePayout({ policy }) {
  let doc;
  try { doc = JSON.parse(policy); } catch (e) {
    const err = new Error(`cannot compute payout: policy is not valid JSON (${e.message})`);
    err.name = "ValueError";
    throw err;
  }
  if (doc === null || Array.isArray(doc) || typeof doc !== "object" || !("limit" in doc)) {
    const err = new Error(`cannot compute payout: policy has no limit: ${policy.slice(0, 60)}`);
    err.name = "ValueError";
    throw err;
  }
  return JSON.stringify({ claim: "C-7", payout: Math.min(4200, doc.limit), currency: "EUR" });
}

const openai = createOpenAI({ baseURL: llm, apiKey: "sk-test" });
const tools = {
  lookup_policy: tool({
    description: "Look up the insurance policy that covers a claim; returns JSON text.",
    inputSchema: z.object({ claim_id: z.string() }),
    execute: async (args) => lookupPolicy(args),
  }),
  compute_payout: tool({
    description: "Compute the payout of a claim from its policy JSON text.",
    inputSchema: z.object({ policy: z.string() }),
    execute: async (args) => computePayout(args),
  }),
};

async function one(name) {
  const result = await generateText({
    model: openai.chat("gpt-4o-mini"),
    prompt: QUESTION,
    tools,
    stopWhen: stepCountIs(6),
    maxRetries: 0,
    experimental_telemetry: { isEnabled: true, functionId: "settle_claim", tracer },
  });
  // The AI SDK hands a tool's error to the model as a tool-error part and goes on. Outside
  // the "swallowed" scenario this agent treats a failed tool as fatal, as many apps do.
  const failed = result.steps.flatMap((s) => s.content).find((p) => p.type === "tool-error");
  if (failed && name !== "swallowed") throw failed.error;
  return result.text;
}

for (const name of SCENARIOS) {
  scenario = name;
  let outcome;
  try {
    outcome = `answered: ${JSON.stringify((await one(name)).slice(0, 120))}`;
  } catch (e) {
    outcome = `raised ${e.name}: ${String(e.message).slice(0, 120)}`;
  }
  await provider.forceFlush();
  if (recordDir) {
    const dir = join(recordDir, "vercel_ai");
    mkdirSync(dir, { recursive: true });
    const body = JSON.parse(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(collector.spans)));
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(body, null, 1) + "\n");
    collector.spans = [];
  }
  console.log(`vercel_ai ${name}: ${outcome}`);
}
await provider.shutdown();
console.log(`spans exported: ${collector.count}`);
