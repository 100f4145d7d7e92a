"""The real Codex CLI (`codex exec`, pinned in tests/e2e/clients/) through `agm run codex`
against `agm demo`: a text turn, a tool turn that reads a file, and a streamed answer.

Stock Codex: its default model and default features (among them `multi_agent`, whose
tools come as a `namespace`), in a temporary HOME whose ~/.codex/config.toml only turns
off the update check, analytics, feedback and the plugin marketplace sync (see CONFIG). `agm run codex` adds the `agm` model
provider (`-c` overrides). See client_harness.py for the recorder and the offline check.
"""

import json
import re
import uuid
from pathlib import Path

from client_harness import assert_streamed, client_home, notes_with_a_secret, run_client

# Telemetry and update checks off. `plugins` is the one feature turned off: it only
# syncs OpenAI's plugin marketplace in the background (`git ls-remote
# https://github.com/openai/plugins.git`, api.github.com, chatgpt.com) and leaves the
# tools Codex sends the model unchanged.
CONFIG = """\
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
"""

REPLY = re.compile(r"Simulated (?P<model>\S+) reply to: (?P<text>.*)", re.S)


def codex(agm_demo: str, tmp_path: Path, prompt: str):
    home, env = client_home(tmp_path)
    (home / ".codex").mkdir(exist_ok=True)
    (home / ".codex" / "config.toml").write_text(CONFIG)
    workdir = tmp_path / "project"
    workdir.mkdir(exist_ok=True)
    run = run_client(
        agm_demo,
        "codex",
        ["exec", "--json", "--skip-git-repo-check", prompt],
        cwd=workdir,
        env=env,
    )
    assert run.returncode == 0, run.explain()
    return run


def items(run, kind: str) -> list[dict]:
    return [
        e["item"]
        for e in run.json_lines()
        if e.get("type") == "item.completed" and e.get("item", {}).get("type") == kind
    ]


def final_message(run) -> str:
    messages = items(run, "agent_message")
    assert messages, f"no agent message\n{run.explain()}"
    return messages[-1]["text"]


def test_codex_answers_a_text_turn(agm_demo, tmp_path):
    prompt = f"Say hello, {uuid.uuid4().hex[:8]}."
    run = codex(agm_demo, tmp_path, prompt)
    text = final_message(run)
    match = REPLY.fullmatch(text)
    assert match and match["text"] == prompt, text
    [done] = [e for e in run.json_lines() if e.get("type") == "turn.completed"]
    assert done["usage"]["input_tokens"] > 0
    assert done["usage"]["output_tokens"] > 0


def test_codex_reads_a_file_with_its_tools(agm_demo, tmp_path):
    """With its default model, Codex 0.171 declares no `tools`: an `additional_tools`
    input item carries namespaces (`functions`, `clock`, `collaboration`), and the
    `functions` namespace's custom tool `exec` runs JavaScript that calls the other tools
    (`await tools.exec_command(...)`). agm flattens a namespace's tools to
    `<namespace>__<name>`; the sim calls `functions__exec` with a script that reads the
    file, and the final answer must quote the file's content."""
    _, secret = notes_with_a_secret(tmp_path)
    script = 'const r = await tools.exec_command({cmd: "cat notes.txt"}); text(r);'
    prompt = f"What does notes.txt say?\nagm-sim:call functions__exec {json.dumps({'input': script})}"
    assert secret not in prompt

    run = codex(agm_demo, tmp_path, prompt)

    # Codex ran the script the sim asked for through agm, in the project, and agm
    # carried its output to Google and the answer back: the final answer quotes it.
    text = final_message(run)
    assert text.startswith("Simulated ") and "[function results: functions__exec returned " in text, text
    assert secret in text, text


def test_codex_shows_a_streamed_answer(agm_demo, tmp_path):
    prompt = f"Tell me a story about {uuid.uuid4().hex[:8]}, in a few words."
    run = codex(agm_demo, tmp_path, prompt)
    text = final_message(run)
    assert REPLY.fullmatch(text), text
    # The Responses stream came in several output_text deltas that add up to it.
    assert_streamed(run, text)
    [call] = [e for e in run.recorder.generation_calls() if e.path.endswith("/responses")][-1:]
    assert call.request_json()["stream"] is True
