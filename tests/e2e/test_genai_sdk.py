"""The real `google-genai` SDK against `agm demo`: the Gemini API pass-through, text,
streaming and function-call round trips (the test's own loop and the SDK's)."""

import json

from google import genai
from google.genai import types
import pytest


MODEL = "gemini-2.5-flash"

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The current weather of a city.",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
# The test runs the tool loop itself: no automatic function calling.
MANUAL_TOOLS = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=[WEATHER])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)


def quoted_result(model: str, text: str) -> dict:
    """The one get_weather result the sim's answer to a function-results turn quotes:
    `Simulated <model> reply to: [function results: get_weather returned <JSON>]`
    (the Gemini API path passes the function response through; key order may change)."""
    prefix = f"Simulated {model} reply to: [function results: get_weather returned "
    assert text.startswith(prefix) and text.endswith("]"), text
    return json.loads(text[len(prefix) : -1])


@pytest.fixture()
def client(agm_demo):
    return genai.Client(api_key="demo", http_options=types.HttpOptions(base_url=agm_demo))


def test_generate_content(client):
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Hello from google-genai",
        config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=200),
    )
    assert response.text == "Simulated gemini-2.5-flash reply to: Hello from google-genai"
    assert response.usage_metadata.total_token_count > 0


def test_stream(client):
    text = "".join(
        chunk.text or ""
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="stream it")
    )
    assert text == "Simulated gemini-2.5-flash reply to: stream it"


def test_count_tokens(client):
    result = client.models.count_tokens(model="gemini-2.5-flash", contents="a" * 400)
    assert 90 <= result.total_tokens <= 110


def test_models_list(client):
    names = [m.name for m in client.models.list()]
    assert "models/gemini-3-flash" in names


def test_anthropic_models_list_reads_the_same_body(agm_demo):
    import anthropic

    ids = [m.id for m in anthropic.Anthropic(base_url=agm_demo, api_key="demo").models.list()]
    assert "gemini-3-flash" in ids


@pytest.mark.parametrize("model", [MODEL, "gemini-3-flash"])
def test_function_call_round_trip(client, model):
    prompt = types.Content(
        role="user", parts=[types.Part(text='Weather in Paris?\nagm-sim:call get_weather {"city": "Paris"}')]
    )
    first = client.models.generate_content(model=model, contents=[prompt], config=MANUAL_TOOLS)
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    assert [p.function_call is not None for p in first.candidates[0].content.parts] == [True]
    (call,) = first.function_calls
    assert call.name == "get_weather"
    assert call.args == {"city": "Paris"}
    assert call.id

    # The model's content goes back as received, then the result with the call's id.
    result = types.Part(
        function_response=types.FunctionResponse(name=call.name, id=call.id, response={"temp_c": 18, "sky": "clear"})
    )
    final = client.models.generate_content(
        model=model,
        contents=[prompt, first.candidates[0].content, types.Content(role="user", parts=[result])],
        config=MANUAL_TOOLS,
    )
    assert final.function_calls is None
    assert quoted_result(model, final.text) == {"temp_c": 18, "sky": "clear"}


def test_function_call_round_trip_streaming(client):
    prompt = types.Content(
        role="user", parts=[types.Part(text='Weather in Oslo?\nagm-sim:call get_weather {"city": "Oslo"}')]
    )
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=[prompt], config=MANUAL_TOOLS))
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert calls[0].id
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP

    model_turn = types.Content(role="model", parts=[types.Part(function_call=calls[0])])
    result = types.Part.from_function_response(name="get_weather", response={"temp_c": -3})
    result.function_response.id = calls[0].id
    text = "".join(
        chunk.text or ""
        for chunk in client.models.generate_content_stream(
            model=MODEL,
            contents=[prompt, model_turn, types.Content(role="user", parts=[result])],
            config=MANUAL_TOOLS,
        )
    )
    assert quoted_result(MODEL, text) == {"temp_c": -3}


def test_automatic_function_calling_in_a_chat(client):
    """The SDK's own tool loop: it calls the Python function and sends its result back."""
    seen = []

    def get_weather(city: str) -> dict:
        """The current weather of a city."""
        seen.append(city)
        return {"city": city, "temp_c": 24}

    chat = client.chats.create(model=MODEL, config=types.GenerateContentConfig(tools=[get_weather]))
    answer = chat.send_message('Weather in Rome?\nagm-sim:call get_weather {"city": "Rome"}')
    assert seen == ["Rome"]
    # The SDK wraps a function's return value as {"result": ...}.
    assert quoted_result(MODEL, answer.text) == {"result": {"city": "Rome", "temp_c": 24}}
    history = chat.get_history()
    assert [c.role for c in history] == ["user", "model", "user", "model"]
    assert history[1].parts[0].function_call.args == {"city": "Rome"}
    assert history[2].parts[0].function_response.response == {"result": {"city": "Rome", "temp_c": 24}}
