"""The real `openai` Python SDK against `agm demo`: Chat Completions, Responses, models."""

import json

import openai
import pytest

UPSTREAM = "gemini-3-pro-high"  # what agm maps gpt-* names to by default


@pytest.fixture()
def client(agm_demo):
    return openai.OpenAI(base_url=agm_demo + "/v1", api_key="demo", max_retries=0)


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Hello from the openai SDK"},
        ],
        max_tokens=200,
    )
    choice = completion.choices[0]
    assert choice.message.content == f"Simulated {UPSTREAM} reply to: Hello from the openai SDK"
    assert choice.finish_reason == "stop"
    assert completion.usage.total_tokens > 0


def test_chat_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == f"Simulated {UPSTREAM} reply to: stream please"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_chat_tools_are_accepted(client):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "use a tool if you like"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "mcp__files__read.file",
                    "description": "an MCP tool whose name Gemini would refuse",
                    "parameters": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "properties": {"path": {"type": "string", "minLength": 1}},
                        "required": ["path"],
                        "additionalProperties": False,
                    },
                },
            }
        ],
    )
    assert completion.choices[0].message.content.startswith("Simulated")


def test_responses_stream_like_codex(client):
    with client.responses.stream(
        model="gpt-5-codex",
        instructions="You are Codex.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hello Responses"}]}],
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == f"Simulated {UPSTREAM} reply to: Hello Responses"
    assert final.output_text == f"Simulated {UPSTREAM} reply to: Hello Responses"
    assert final.status == "completed"


def test_responses_non_streaming(client):
    response = client.responses.create(model="gpt-5-codex", input="plain string input")
    assert response.output_text == f"Simulated {UPSTREAM} reply to: plain string input"


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "gemini-3-flash" in ids and "claude-sonnet-4-5" in ids


def test_bad_request_is_openai_shaped(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert err.value.status_code == 400
    assert "messages" in err.value.message
    assert json.loads(err.value.response.text)["error"]["type"] == "invalid_request_error"
