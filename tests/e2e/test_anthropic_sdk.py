"""The real `anthropic` Python SDK against `agm demo`, streaming and not: text, tool round
trips, and a multi-turn thinking conversation with tools that replays signed thinking."""

import json
import urllib.error
import urllib.request

import anthropic
import pytest

MODEL = "claude-sonnet-5"  # a current client name; agm maps it to the upstream claude-sonnet-4-5
UPSTREAM = "claude-sonnet-4-5"
THINKING_MODEL = "claude-opus-4-5"  # agm maps claude-opus-* to the upstream claude-opus-4-5-thinking
THINKING_UPSTREAM = "claude-opus-4-5-thinking"
THINKING = {"type": "enabled", "budget_tokens": 1024}

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather of a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def ask(client, stream: bool, **params):
    """One Messages call, whole or streamed (the SDK assembles the streamed message)."""
    if stream:
        with client.messages.stream(**params) as s:
            return s.get_final_message()
    return client.messages.create(**params)


def results_reply(upstream: str, output: str) -> str:
    """The sim's answer to a turn that carries one get_weather result (agm sends a
    string tool_result upstream as the function response `{"output": <text>}`)."""
    quoted = json.dumps({"output": output}, separators=(",", ":"))
    return f"Simulated {upstream} reply to: [function results: get_weather returned {quoted}]"


@pytest.fixture()
def client(agm_demo):
    return anthropic.Anthropic(base_url=agm_demo, api_key="demo", max_retries=0)


def test_message_round_trip(client):
    msg = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "Hello from the anthropic SDK"}],
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == f"Simulated {UPSTREAM} reply to: Hello from the anthropic SDK"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_system_and_multi_turn(client):
    msg = client.messages.create(
        model=MODEL,
        max_tokens=256,
        system=[{"type": "text", "text": "You are terse."}],
        # Sampling parameters that older SDKs (and Claude Code) still send.
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 20},
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
    )
    assert msg.content[0].text == f"Simulated {UPSTREAM} reply to: second question"


def test_streaming_text_and_events(client):
    events = []
    with client.messages.stream(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "Stream this, please"}],
    ) as stream:
        for event in stream:
            events.append(event.type)
        final = stream.get_final_message()
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text == f"Simulated {UPSTREAM} reply to: Stream this, please"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    raw = [e for e in events if e in {"message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"}]
    assert raw[0] == "message_start"
    assert raw[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in raw and "content_block_stop" in raw
    assert events.count("text") >= 2, "the reply arrives in several deltas"


def test_max_tokens_stop_reason(client):
    msg = client.messages.create(
        model=MODEL,
        max_tokens=3,
        messages=[{"role": "user", "content": "a long answer please, as long as you can make it"}],
    )
    assert msg.stop_reason == "max_tokens"
    assert len(msg.content[0].text) <= 12


def test_bad_request_names_the_field(client):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=MODEL, max_tokens=256, messages=[])
    assert err.value.status_code == 400
    assert "messages" in str(err.value)
    assert err.value.body["error"]["type"] == "invalid_request_error"


def test_wrong_type_names_the_field(agm_demo):
    body = json.dumps({"model": MODEL, "max_tokens": "lots", "messages": [{"role": "user", "content": "x"}]})
    req = urllib.request.Request(
        agm_demo + "/v1/messages", data=body.encode(), headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400
    payload = json.load(err.value)
    assert payload["type"] == "error"
    assert "max_tokens" in payload["error"]["message"]


def test_unknown_route_is_json_404(agm_demo):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(agm_demo + "/v1/nothing-here")
    assert err.value.code == 404
    assert json.load(err.value)["error"]["status"] == "NOT_FOUND"


def test_tool_round_trip(client):
    prompt = 'What is the weather in Paris?\nagm-sim:call get_weather {"city": "Paris"}'
    messages = [{"role": "user", "content": prompt}]
    first = client.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=messages)
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["tool_use"]
    call = first.content[0]
    assert call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    assert isinstance(call.id, str) and call.id

    # The assistant content goes back as the SDK returned it, then the tool's result.
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C and sunny"}],
        },
    ]
    final = client.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=messages)
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == results_reply(UPSTREAM, "18 C and sunny")


def test_tool_round_trip_streaming(client):
    prompt = 'Weather in Oslo?\nagm-sim:call get_weather {"city": "Oslo"}'
    messages = [{"role": "user", "content": prompt}]
    events = []
    with client.messages.stream(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=messages) as stream:
        for event in stream:
            events.append(event.type)
        first = stream.get_final_message()
    assert "input_json" in events, events
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["tool_use"]
    call = first.content[0]
    assert (call.name, call.input) == ("get_weather", {"city": "Oslo"})
    assert call.id

    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": [{"type": "text", "text": "-3 C"}, {"type": "text", "text": "snow"}],
                }
            ],
        },
    ]
    with client.messages.stream(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=messages) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert "".join(b.text for b in final.content if b.type == "text") == results_reply(UPSTREAM, "-3 C\nsnow")


def signed_thinking(message):
    """The thinking blocks of `message`, each checked to carry a signature."""
    blocks = [b for b in message.content if b.type == "thinking"]
    for block in blocks:
        assert isinstance(block.signature, str) and block.signature, block
        assert block.thinking.startswith("Thinking about how to answer: ")
    return blocks


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_thinking_conversation_with_tools(client, stream):
    """Issue 4: a multi-turn thinking conversation with tools whose history replays the
    signed thinking blocks exactly as the SDK received them.

    What shows that the signatures really went back upstream: agm turns thinking off
    for a request that continues a tool loop unless the assistant turn it continues
    starts with a thinking block whose signature its cache knows as this session's
    Claude signature (crates/agm-translate: `last_tool_turn_has_signed_thinking`,
    `SignaturePolicy::replay`); only then does it send the block as a signed thought
    part and ask for thoughts, and the sim answers with a thought only when asked
    (crates/agm-sim/src/generate.rs). So a thinking block in the answer to turn 2 means
    the replayed signature reached the sim. The sim in turn checks every replayed
    `thoughtSignature` (crates/agm-sim/src/validate.rs): it must be base64, and one it
    minted must belong to the family of the model it is replayed to, else 400
    "Invalid `signature` in `thinking` block". It does not reject a missing signature
    (agm's fallback covers that case; see the test below), so the 200 alone would prove
    less than the thinking block does.
    """
    params = dict(model=THINKING_MODEL, max_tokens=4096, thinking=THINKING, tools=[WEATHER_TOOL])

    # Turn 1: thinking, then the call.
    messages = [{"role": "user", "content": 'Weather in Rome?\nagm-sim:call get_weather {"city": "Rome"}'}]
    first = ask(client, stream, messages=messages, **params)
    assert first.model == THINKING_MODEL
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    (thought1,) = signed_thinking(first)
    call = first.content[1]
    assert (call.name, call.input) == ("get_weather", {"city": "Rome"})
    assert call.id

    # Turn 2: the assistant content exactly as received (signed thinking included),
    # then the result. Accepted with thinking on, and the answer quotes the result.
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "24 C, clear"}]},
    ]
    second = ask(client, stream, messages=messages, **params)
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["thinking", "text"]
    (thought2,) = signed_thinking(second)
    assert thought2.signature != thought1.signature
    assert second.content[1].text == results_reply(THINKING_UPSTREAM, "24 C, clear")

    # Turn 3: a further question over the whole history (two signed thinking blocks).
    messages += [
        {"role": "assistant", "content": second.content},
        {"role": "user", "content": "Thanks. Should I take an umbrella?"},
    ]
    third = ask(client, stream, messages=messages, **params)
    assert third.stop_reason == "end_turn"
    assert [b.type for b in third.content] == ["thinking", "text"]
    (thought3,) = signed_thinking(third)
    assert thought3.signature not in {thought1.signature, thought2.signature}
    assert third.content[1].text == f"Simulated {THINKING_UPSTREAM} reply to: Thanks. Should I take an umbrella?"

    # Turn 4 and 5: a second tool loop on top of that history.
    messages += [
        {"role": "assistant", "content": third.content},
        {"role": "user", "content": 'And in Milan?\nagm-sim:call get_weather {"city": "Milan"}'},
    ]
    fourth = ask(client, stream, messages=messages, **params)
    assert [b.type for b in fourth.content] == ["thinking", "tool_use"]
    signed_thinking(fourth)
    call = fourth.content[1]
    assert (call.name, call.input) == ("get_weather", {"city": "Milan"})
    messages += [
        {"role": "assistant", "content": fourth.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "19 C, rain"}]},
    ]
    fifth = ask(client, stream, messages=messages, **params)
    assert [b.type for b in fifth.content] == ["thinking", "text"]
    signed_thinking(fifth)
    assert fifth.content[1].text == results_reply(THINKING_UPSTREAM, "19 C, rain")


def test_thinking_with_a_forged_signature_goes_without_thinking(client):
    """The control for the test above: the same tool loop with the thinking block's
    signature altered. agm does not trust a signature it did not hand out in this
    conversation, so it sends the thinking as plain text and the request without
    thinking: still answered, but with no thinking block."""
    params = dict(model=THINKING_MODEL, max_tokens=4096, thinking=THINKING, tools=[WEATHER_TOOL])
    messages = [{"role": "user", "content": 'Weather in Lima?\nagm-sim:call get_weather {"city": "Lima"}'}]
    first = client.messages.create(messages=messages, **params)
    thinking, call = first.content
    assert thinking.type == "thinking" and call.type == "tool_use"
    forged = thinking.model_dump() | {"signature": thinking.signature[:-8] + "AAAAAAAA"}
    messages += [
        {"role": "assistant", "content": [forged, call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "16 C"}]},
    ]
    second = client.messages.create(messages=messages, **params)
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == results_reply(THINKING_UPSTREAM, "16 C")
