"""The real OpenCode (`opencode run`, pinned in tests/e2e/clients/) through `agm run
opencode` against `agm demo`: a text turn on each of agm's three providers (OpenAI Chat
Completions, OpenAI Responses, Anthropic Messages), a tool turn that reads a file, and
a streamed answer.

Stock OpenCode in a temporary HOME: its global config only turns off autoupdate and
sharing, and the environment keeps it from fetching the models.dev catalogue and LSP
servers. `agm run opencode` adds agm's providers and default model (OPENCODE_CONFIG).
See client_harness.py for the recorder and the offline check.

Two things OpenCode does that a test has to know:
- In the background it installs `@opencode-ai/plugin` from the npm registry into each
  config dir that has no `node_modules` with it listed (its first run, online). The
  temporary HOME's ~/.config/opencode is laid out as after that first run (a
  package.json and lock that list it), so the test sends nothing to the registry.
- `opencode run` joins its message words with spaces and puts one that holds a space
  in quotes (escaping its quotes), so the prompts go as separate words.
"""

import json
import re
import uuid
from pathlib import Path

import pytest

from client_harness import assert_streamed, client_home, notes_with_a_secret, run_client

GLOBAL_CONFIG = {
    "$schema": "https://opencode.ai/config.json",
    "autoupdate": False,
    "share": "disabled",
}
OFFLINE = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
}

REPLY = re.compile(r"Simulated (?P<model>\S+) reply to: (?P<text>.*)", re.S)

# The routes each of agm's OpenCode providers calls.
PROVIDERS = {
    "agm": "/v1/chat/completions",
    "agm-responses": "/v1/responses",
    "agm-anthropic": "/v1/messages",
}


def opencode(agm_demo: str, tmp_path: Path, prompt: str, *args: str):
    home, env = client_home(tmp_path)
    config_dir = home / ".config" / "opencode"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "opencode.json").write_text(json.dumps(GLOBAL_CONFIG))
    # As after OpenCode's first run: its plugin package counts as installed here.
    (config_dir / "node_modules").mkdir(exist_ok=True)
    deps = {"dependencies": {"@opencode-ai/plugin": "*"}}
    (config_dir / "package.json").write_text(json.dumps(deps))
    lock = {"lockfileVersion": 3, "packages": {"": deps}}
    (config_dir / "package-lock.json").write_text(json.dumps(lock))
    env.update(OFFLINE)
    workdir = tmp_path / "project"
    workdir.mkdir(exist_ok=True)
    run = run_client(
        agm_demo,
        "opencode",
        ["run", "--format", "json", *args, *prompt.split(" ")],
        cwd=workdir,
        env=env,
    )
    assert run.returncode == 0, run.explain()
    return run


def parts(run, kind: str) -> list[dict]:
    return [e["part"] for e in run.json_lines() if e.get("type") == kind and "part" in e]


def answer(run) -> str:
    texts = parts(run, "text")
    assert texts, f"no text\n{run.explain()}"
    return texts[-1]["text"]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_opencode_answers_a_text_turn(agm_demo, tmp_path, provider):
    prompt = f"Say hello, {uuid.uuid4().hex[:8]}."
    run = opencode(agm_demo, tmp_path, prompt, "--model", f"{provider}/gemini-3-flash")
    match = REPLY.fullmatch(answer(run))
    assert match and match["text"] == prompt, answer(run)
    routes = {e.path for e in run.recorder.generation_calls() if e.status == 200}
    assert PROVIDERS[provider] in routes, run.explain()


def test_opencode_reads_a_file_with_its_read_tool(agm_demo, tmp_path):
    notes, secret = notes_with_a_secret(tmp_path)
    args = {"filePath": str(notes)}
    prompt = f"What does notes.txt say?\nagm-sim:call read {json.dumps(args, separators=(',', ':'))}"
    assert secret not in prompt

    run = opencode(agm_demo, tmp_path, prompt)

    [tool] = parts(run, "tool_use")
    assert tool["tool"] == "read" and tool["state"]["input"] == args, tool
    assert tool["state"]["status"] == "completed", tool
    assert secret in tool["state"]["output"], tool
    text = answer(run)
    assert "[function results: read returned " in text and secret in text, text


def test_opencode_shows_a_streamed_answer(agm_demo, tmp_path):
    prompt = f"Tell me a story about {uuid.uuid4().hex[:8]}, in a few words."
    run = opencode(agm_demo, tmp_path, prompt)
    text = answer(run)
    assert REPLY.fullmatch(text), text
    assert_streamed(run, text)
