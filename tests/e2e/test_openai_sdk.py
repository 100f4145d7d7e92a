"""The real `openai` Python SDK against `agm demo`: Chat Completions, Responses, models."""

import json

import openai
import pytest

UPSTREAM = "gemini-3-pro-high"  # what agm maps gpt-* names to by default

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather of a city.",
            "parameters": WEATHER_PARAMETERS,
        },
    }
]
RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The current weather of a city.",
        "parameters": WEATHER_PARAMETERS,
    }
]


def results_reply(output: str) -> str:
    """The sim's answer to a turn that carries one get_weather result (agm sends a tool
    output upstream as the function response `{"output": <text>}`)."""
    quoted = json.dumps({"output": output}, separators=(",", ":"))
    return f"Simulated {UPSTREAM} reply to: [function results: get_weather returned {quoted}]"


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


def test_chat_tool_round_trip(client):
    messages = [{"role": "user", "content": 'Weather in Paris?\nagm-sim:call get_weather {"city": "Paris"}'}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=CHAT_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    # The SDK's own message object goes back as is (content, refusal, ... as null),
    # then the tool's answer, keyed by the call id.
    messages += [
        choice.message,
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 18})},
    ]
    final = client.chat.completions.create(model="gpt-4o", messages=messages, tools=CHAT_TOOLS)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].message.content == results_reply('{"temp_c": 18}')


def test_chat_tool_round_trip_streaming(client):
    messages = [{"role": "user", "content": 'Weather in Oslo?\nagm-sim:call get_weather {"city": "Oslo"}'}]
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, tools=CHAT_TOOLS, stream=True)
    calls, text, finish = {}, "", None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert text == ""
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"] and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Oslo"}

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "-3 C, snow"},
    ]
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, tools=CHAT_TOOLS, stream=True)
    text, finish = "", None
    for chunk in stream:
        for choice in chunk.choices:
            assert not choice.delta.tool_calls
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert finish == "stop"
    assert text == results_reply("-3 C, snow")


def test_responses_tool_round_trip(client):
    items = [{"role": "user", "content": 'Weather in Rome?\nagm-sim:call get_weather {"city": "Rome"}'}]
    first = client.responses.create(model="gpt-5-codex", input=items, tools=RESPONSES_TOOLS)
    assert first.status == "completed"
    # gpt-5-codex runs on Gemini 3, which signs its first call: the signature comes as a
    # reasoning item (encrypted content) that goes back with the call.
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    assert first.output[0].encrypted_content
    call = first.output[1]
    assert call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "Rome"}
    assert first.output_text == ""

    # Stateless (agm stores nothing): the output items go back as input, then the result.
    items += first.output
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "24 C, clear"})
    final = client.responses.create(model="gpt-5-codex", input=items, tools=RESPONSES_TOOLS)
    assert final.status == "completed"
    assert [item.type for item in final.output] == ["message"]
    assert final.output_text == results_reply("24 C, clear")


def test_responses_tool_round_trip_streaming(client):
    items = [{"role": "user", "content": 'Weather in Lima?\nagm-sim:call get_weather {"city": "Lima"}'}]
    with client.responses.stream(model="gpt-5-codex", input=items, tools=RESPONSES_TOOLS) as stream:
        events = [e for e in stream]
        first = stream.get_final_response()
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "Lima"}
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    call = first.output[1]
    assert call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "Lima"}

    items += first.output
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "16 C"})
    with client.responses.stream(model="gpt-5-codex", input=items, tools=RESPONSES_TOOLS) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == results_reply("16 C")
    assert final.output_text == results_reply("16 C")
    assert final.status == "completed"
