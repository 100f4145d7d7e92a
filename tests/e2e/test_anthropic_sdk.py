"""The real `anthropic` Python SDK against `agm demo`, streaming and not."""

import json
import urllib.error
import urllib.request

import anthropic
import pytest

MODEL = "claude-sonnet-5"  # a current client name; agm maps it to the upstream claude-sonnet-4-5
UPSTREAM = "claude-sonnet-4-5"


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
