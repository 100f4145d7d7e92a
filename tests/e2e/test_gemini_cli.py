"""The real Gemini CLI (`gemini -p`, pinned in tests/e2e/clients/) through `agm run gemini`
against `agm demo`: a text turn, a tool turn that reads a file, and a streamed answer.

Stock Gemini CLI: its default model (and its model router), in a temporary HOME whose
~/.gemini/settings.json only turns off usage statistics, telemetry and the update
check. The workspace is trusted with GEMINI_CLI_TRUST_WORKSPACE, as Gemini CLI's docs
say for headless runs. `agm run gemini` adds GOOGLE_GEMINI_BASE_URL, GEMINI_API_KEY
and the `gemini-api-key` auth type (system settings). See client_harness.py for the
recorder and the offline check.
"""

import json
import re
import uuid
from pathlib import Path

from client_harness import assert_streamed, client_home, notes_with_a_secret, run_client

SETTINGS = {
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}

REPLY = re.compile(r"Simulated (?P<model>\S+) reply to: (?P<text>.*)", re.S)


def gemini(agm_demo: str, tmp_path: Path, prompt: str, output_format: str):
    home, env = client_home(tmp_path)
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env["GEMINI_CLI_TRUST_WORKSPACE"] = "true"
    workdir = tmp_path / "project"
    workdir.mkdir(exist_ok=True)
    run = run_client(
        agm_demo,
        "gemini",
        ["-p", prompt, "--output-format", output_format],
        cwd=workdir,
        env=env,
    )
    assert run.returncode == 0, run.explain()
    return run


def events(run, kind: str) -> list[dict]:
    return [e for e in run.json_lines() if e.get("type") == kind]


def test_gemini_cli_answers_a_text_turn(agm_demo, tmp_path):
    prompt = f"Say hello, {uuid.uuid4().hex[:8]}."
    run = gemini(agm_demo, tmp_path, prompt, "json")
    out = json.loads(run.stdout)
    match = REPLY.fullmatch(out["response"].strip())
    assert match and match["text"] == prompt, out


def test_gemini_cli_reads_a_file_with_its_read_file_tool(agm_demo, tmp_path):
    notes, secret = notes_with_a_secret(tmp_path)
    args = {"file_path": str(notes)}
    prompt = f"What does notes.txt say?\nagm-sim:call read_file {json.dumps(args)}"
    assert secret not in prompt

    run = gemini(agm_demo, tmp_path, prompt, "stream-json")

    [use] = events(run, "tool_use")
    assert use["tool_name"] == "read_file" and use["parameters"] == args, use
    [result] = events(run, "tool_result")
    assert result["tool_id"] == use["tool_id"] and result["status"] == "success", result
    answer = "".join(e["content"] for e in events(run, "message") if e["role"] == "assistant")
    assert "[function results: read_file returned " in answer, answer
    assert secret in answer, answer


def test_gemini_cli_shows_a_streamed_answer(agm_demo, tmp_path):
    prompt = f"Tell me a story about {uuid.uuid4().hex[:8]}, in a few words."
    run = gemini(agm_demo, tmp_path, prompt, "stream-json")
    deltas = [e["content"] for e in events(run, "message") if e["role"] == "assistant"]
    text = "".join(deltas)
    match = REPLY.fullmatch(text.strip())
    assert match and match["text"] == prompt, text
    # Gemini CLI printed the answer as it came: several deltas, one per SSE event agm sent.
    assert len(deltas) >= 2, deltas
    assert_streamed(run, text)
    [result] = events(run, "result")
    assert result["status"] == "success", result
