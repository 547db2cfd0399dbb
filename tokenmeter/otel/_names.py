"""Names and values from the OpenTelemetry GenAI semantic conventions, and tokenmeter's own.

tokenmeter follows the GenAI conventions as released in semantic conventions
v1.41.0, the last release that defines them in the main repository (later ones
moved them to ``open-telemetry/semantic-conventions-genai``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The semantic conventions release whose GenAI conventions tokenmeter follows.
SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

# -- attributes (GenAI conventions) ------------------------------------------------------
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # v1.36.0 and earlier: the provider, under its old name
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING = "gen_ai.usage.reasoning.output_tokens"
USAGE_COST = "gen_ai.usage.cost"  # not in the conventions; the name OpenLIT and others use

# -- tokenmeter's own attributes ---------------------------------------------------------
SCOPE = "tokenmeter.scope"
MODULE = "tokenmeter.module"
TM_OPERATION = "tokenmeter.operation"
PRICED = "tokenmeter.priced"
ESTIMATED = "tokenmeter.estimated"
KIND = "tokenmeter.kind"
TM_TOKEN_TYPE = "tokenmeter.token.type"
BAGGAGE_KEY = "tokenmeter.scope"

# -- metrics -----------------------------------------------------------------------------
TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"
COST = "tokenmeter.cost"
CALLS = "tokenmeter.calls"
TOKENS = "tokenmeter.tokens"
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

#: A record's kind -> ``gen_ai.operation.name`` (well-known values where one applies;
#: the conventions allow a custom value otherwise, and the kind is used as it is).
OPERATIONS: Mapping[str, str] = {
    "completion": "chat",
    "responses": "chat",
    "manual": "chat",
    "text_completion": "text_completion",
    "embedding": "embeddings",
}

#: LiteLLM's provider names -> the conventions' well-known ``gen_ai.provider.name`` values.
PROVIDERS: Mapping[str, str] = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "sagemaker": "aws.sagemaker",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "watsonx_text": "ibm.watsonx.ai",
}

#: ``gen_ai.provider.name`` -> ``gen_ai.system`` as v1.36.0 spelled the values that differ.
OLD_SYSTEMS: Mapping[str, str] = {"x_ai": "xai"}


def operation_name(kind: str) -> str:
    """``gen_ai.operation.name`` for a record of ``kind``."""
    return OPERATIONS.get(kind, kind)


def provider_name(provider: str | None) -> str:
    """``gen_ai.provider.name`` for LiteLLM's provider name (``unknown`` when there is none)."""
    if not provider:
        return "unknown"
    return PROVIDERS.get(provider, provider)


def latest_only(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the latest GenAI conventions only."""
    value = (os.environ if env is None else env).get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    return "gen_ai_latest_experimental" in {v.strip() for v in value.split(",")}
