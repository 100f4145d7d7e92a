"""The real Claude Code CLI (`claude -p`, pinned in tests/e2e/clients/ and installed
by ./scripts/test) against `agm demo`: a task that needs a tool call (with the
variables `agm env claude` prints), and a text turn and a streamed answer started as a
user starts it, `agm run claude` (see client_harness.py).

The simulated Google never calls a tool by itself; the prompt carries an
`agm-sim:call <tool> <json-args>` line (see "The simulated Google" in docs/TESTING.md),
so the sim answers with a functionCall to Claude Code's `Read` tool. Claude Code runs
the tool on a file whose content appears nowhere in the prompt, sends the result back
through agm, and the sim's final answer quotes it.

Claude Code runs offline: a temporary HOME, nonessential traffic and the updater off,
and every proxy variable pointed at a local trap that refuses and records any request
not sent to loopback (the trap must stay empty).
"""

import json
import os
import re
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from client_harness import assert_streamed, client_home, run_client

CLAUDE = Path(__file__).resolve().parent / "clients" / "node_modules" / ".bin" / "claude"
# Claude Code's current default model (claude-opus-5-5) cannot go through agm yet (see
# test_default_model_reads_a_file below); this older name maps to the upstream
# claude-sonnet-4-5, and Claude Code sends it the full set of tools and thinking.
MODEL = "claude-sonnet-4-5"


def claude_binary() -> str:
    if not CLAUDE.exists():
        pytest.fail(
            f"{CLAUDE} is missing: run ./scripts/test, which installs the pinned Claude Code "
            "with `npm install` in tests/e2e/clients/"
        )
    return str(CLAUDE)


class ProxyTrap:
    """An HTTP proxy on loopback that refuses every request and remembers its first line."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0]
                    self.requests.append(line.decode(errors="replace"))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    self.requests.append("<a connection without a request line>")

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


def run_claude(base_url: str, workdir: Path, prompt: str, model: str | None) -> list[dict]:
    """Runs `claude -p` in `workdir`; returns its stream-json events, checking that it
    exited 0 and sent nothing anywhere but loopback."""
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    tmp = workdir.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    trap = ProxyTrap()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "TMPDIR": str(tmp),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "demo",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "HTTP_PROXY": trap.url,
        "HTTPS_PROXY": trap.url,
        "http_proxy": trap.url,
        "https_proxy": trap.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if model is not None:
        env["ANTHROPIC_MODEL"] = model
    try:
        proc = subprocess.run(
            [
                claude_binary(),
                "-p",
                prompt,
                "--output-format",
                "stream-json",
                "--verbose",
                "--allowedTools",
                "Read",
            ],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        trap.close()
    assert trap.requests == [], f"Claude Code tried to leave loopback: {trap.requests}"
    assert proc.returncode == 0, f"claude exited {proc.returncode}: {proc.stderr}\n{proc.stdout}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def blocks(events: list[dict], role: str, kind: str) -> list[dict]:
    return [
        block
        for event in events
        if event.get("type") == role
        for block in event["message"]["content"]
        if isinstance(block, dict) and block.get("type") == kind
    ]


def strings(value) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def read_a_file(agm_demo: str, tmp_path: Path, model: str | None, upstream: str) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    secret = f"the launch code is {uuid.uuid4().hex}"
    notes = workdir / "notes.txt"
    notes.write_text(f"{secret}\n")
    args = {"file_path": str(notes)}
    prompt = f"What does notes.txt say?\nagm-sim:call Read {json.dumps(args)}"
    assert secret not in prompt

    events = run_claude(agm_demo, workdir, prompt, model)

    # The sim asked for Read through agm, with the arguments of the directive.
    [call] = blocks(events, "assistant", "tool_use")
    assert call["name"] == "Read"
    assert call["input"] == args
    # Claude Code ran its Read tool (line-numbered output) on the file.
    [result] = blocks(events, "user", "tool_result")
    assert result["tool_use_id"] == call["id"]
    assert not result.get("is_error"), result
    assert any(f"1\t{secret}" in s for s in strings(result["content"])), result
    # agm carried the result to Google and the answer back: the final answer quotes it.
    [final] = [e for e in events if e.get("type") == "result"]
    assert final["subtype"] == "success", final
    assert final["is_error"] is False
    assert final["num_turns"] == 2
    assert final["permission_denials"] == []
    text = final["result"]
    prefix = f"Simulated {upstream} reply to: [function results: Read returned "
    assert text.startswith(prefix) and text.endswith("]"), text
    quoted = json.loads(text[len(prefix) : -1])
    assert any(f"1\t{secret}" in s for s in strings(quoted)), quoted


def test_claude_code_reads_a_file_with_its_read_tool(agm_demo, tmp_path):
    read_a_file(agm_demo, tmp_path, MODEL, upstream="claude-sonnet-4-5")


def test_an_undeclared_tool_gets_the_sims_answer_naming_claude_codes_tools(agm_demo, tmp_path):
    workdir = tmp_path / "project"
    workdir.mkdir()
    events = run_claude(agm_demo, workdir, "agm-sim:call NoSuchTool {}", MODEL)
    assert blocks(events, "assistant", "tool_use") == []
    [final] = [e for e in events if e.get("type") == "result"]
    text = final["result"]
    prefix = "agm-sim: cannot call NoSuchTool: no function of that name (declared: "
    assert text.startswith(prefix) and text.endswith(")"), text
    # The tool names agm declared to Google: Claude Code's own, unrenamed.
    declared = set(text[len(prefix) : -1].split(", "))
    assert {"Bash", "Read", "Edit", "Write"} <= declared, declared


# Claude Code's default model sends a `role: "system"` message inside `messages` and
# asks for max_tokens 128000: agm folds the former into the system instruction and caps
# the latter at the upstream model's limit.
def test_default_model_reads_a_file(agm_demo, tmp_path):
    read_a_file(agm_demo, tmp_path, None, upstream="claude-opus-4-5-thinking")


# Claude Code's own switches for telemetry, error reports, the updater and other
# nonessential traffic: off, as in run_claude above.
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}


def claude_run(agm_demo: str, tmp_path: Path, prompt: str, *args: str):
    """`agm run claude -p PROMPT ARGS` with Claude Code's default model."""
    _, env = client_home(tmp_path)
    env.update(QUIET)
    workdir = tmp_path / "project"
    workdir.mkdir(exist_ok=True)
    run = run_client(agm_demo, "claude", ["-p", prompt, *args], cwd=workdir, env=env)
    assert run.returncode == 0, run.explain()
    return run


def test_claude_code_answers_a_text_turn_through_agm_run(agm_demo, tmp_path):
    prompt = f"Say hello, {uuid.uuid4().hex[:8]}."
    run = claude_run(agm_demo, tmp_path, prompt, "--output-format", "json")
    result = json.loads(run.stdout)
    assert result["is_error"] is False, result
    assert re.fullmatch(rf"Simulated \S+ reply to: {re.escape(prompt)}", result["result"]), result


def test_claude_code_shows_a_streamed_answer_through_agm_run(agm_demo, tmp_path):
    prompt = f"Tell me a story about {uuid.uuid4().hex[:8]}, in a few words."
    run = claude_run(
        agm_demo,
        tmp_path,
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    )
    events = run.json_lines()
    # Claude Code passed on each text delta as it came.
    deltas = [
        e["event"]["delta"]["text"]
        for e in events
        if e.get("type") == "stream_event"
        and e["event"].get("type") == "content_block_delta"
        and e["event"]["delta"].get("type") == "text_delta"
    ]
    text = "".join(deltas)
    assert re.fullmatch(rf"Simulated \S+ reply to: {re.escape(prompt)}", text), text
    assert len(deltas) >= 2, deltas
    assert_streamed(run, text)
    [final] = [e for e in events if e.get("type") == "result"]
    assert final["result"] == text
