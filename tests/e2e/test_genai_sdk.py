"""The real `google-genai` SDK against `agm demo`: the Gemini API pass-through."""

from google import genai
from google.genai import types
import pytest


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
