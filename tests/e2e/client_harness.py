"""Runs a real coding-agent CLI (pinned in tests/e2e/clients/, installed by
./scripts/test) through `agm run <client>` against `agm demo`, offline, and records
what passes between them.

- The client starts as a user starts it: `agm run <client> ARGS...`, which reads the
  gateway's port from agm's config (`AGM_SERVER__PORT`) and gives the client its
  provider settings. Everything else is the client's stock configuration, in a
  temporary HOME, with only telemetry and update checks turned off (each test file
  writes those settings).
- Between the client and agm sits a recorder: a small HTTP proxy on loopback that
  forwards every request to `agm demo` as it is, streams the answer back as it comes,
  and keeps both, so a test can check that the answer really was streamed (SSE, in
  several events) and report agm's error bodies when a client fails.
- Nothing may leave the machine: the whole process tree runs under `strace`, which
  records every address it connects or sends to; any that is not loopback fails the
  test (a DNS lookup of a remote name shows up as a packet to the resolver).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent
CLIENTS = E2E / "clients"
NODE_BIN = CLIENTS / "node_modules" / ".bin"


def agm_binary() -> str:
    return str(Path(os.environ.get("AGM_BIN", "target/debug/agm")).resolve())


def client_binary(name: str) -> Path:
    path = NODE_BIN / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run ./scripts/test, which installs the pinned clients "
            "with `npm install` in tests/e2e/clients/"
        )
    return path


@dataclass
class Exchange:
    """One request through the recorder and the answer agm gave."""

    method: str
    path: str
    request: bytes
    status: int = 0
    content_type: str = ""
    response: bytes = b""

    def request_json(self):
        try:
            return json.loads(self.request)
        except ValueError:
            return None

    def sse_events(self) -> list:
        """The JSON payloads of the answer's `data:` lines (an SSE answer)."""
        events = []
        for line in self.response.decode(errors="replace").splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                try:
                    events.append(json.loads(data))
                except ValueError:
                    pass
        return events

    def summary(self) -> str:
        body = self.response.decode(errors="replace")
        if self.status < 400:
            body = body[:200]
        return f"{self.method} {self.path} -> {self.status} {self.content_type}: {body}"


class Recorder:
    """A forwarding HTTP proxy on loopback in front of `agm demo`."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                exchange = Exchange(self.command, self.path, body)
                with recorder.lock:
                    recorder.exchanges.append(exchange)
                conn = http.client.HTTPConnection(*recorder.upstream, timeout=120)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "proxy-connection")
                }
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                exchange.status = answer.status
                exchange.content_type = answer.getheader("content-type", "")
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("transfer-encoding", "chunked")
                self.send_header("connection", "close")
                self.end_headers()
                while True:
                    chunk = answer.read1(65536)
                    if not chunk:
                        break
                    exchange.response += chunk
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                self.close_connection = True
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def generation_calls(self) -> list[Exchange]:
        """The model calls: every POST (the clients' other requests are GETs of model lists)."""
        return [e for e in self.exchanges if e.method == "POST"]

    def report(self) -> str:
        return "\n".join(e.summary() for e in self.exchanges) or "(no request reached agm)"


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    recorder: Recorder
    remote: list[str] = field(default_factory=list)

    def explain(self) -> str:
        return (
            f"`{' '.join(self.args)}` exited {self.returncode}\n"
            f"--- what agm answered:\n{self.recorder.report()}\n"
            f"--- stderr:\n{self.stderr[-4000:]}\n--- stdout:\n{self.stdout[-4000:]}"
        )

    def json_lines(self) -> list:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


_ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def remote_addresses(strace_log: str) -> list[str]:
    """The addresses in an strace log that are not this machine's loopback."""
    found = []
    for match in _ADDRESS.finditer(strace_log):
        text = match.group(1) or match.group(2)
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            found.append(text)
            continue
        mapped = getattr(ip, "ipv4_mapped", None)
        if ip.is_loopback or ip.is_unspecified or (mapped is not None and mapped.is_loopback):
            continue
        found.append(text)
    return sorted(set(found))


def strace_binary() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.fail(
            "strace is needed to check that the clients stay on loopback "
            "(Debian/Ubuntu: apt-get install strace)"
        )
    return path


def client_home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A temporary HOME and the environment that points every client at it."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {
        "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "USER": "agm-e2e",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        # agm's own config for `agm run`: a data dir in the temporary HOME, no keychain.
        "AGM_STORAGE__KEY_STORE": "file",
        "RUST_LOG": "warn",
    }
    return home, env


def run_client(
    agm_demo: str,
    client: str,
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 120,
) -> Run:
    """`agm run <client> ARGS` in `cwd` with `env`, through a recorder in front of
    `agm demo`, under strace. Fails the test if anything left loopback."""
    client_binary(client)
    recorder = Recorder(agm_demo)
    log = Path(env["TMPDIR"]) / f"strace-{client}.log"
    full_env = {**env, "AGM_SERVER__PORT": str(recorder.port)}
    command = [agm_binary(), "run", client, *args]
    traced = [
        strace_binary(),
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-e",
        "trace=connect,sendto,sendmsg,sendmmsg",
        "-e",
        "signal=none",
        "-o",
        str(log),
        *command,
    ]
    try:
        proc = subprocess.run(
            traced,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        recorder.close()
        pytest.fail(
            f"`{' '.join(command)}` did not finish in {timeout} s\n"
            f"--- what agm answered:\n{recorder.report()}\n"
            f"--- stderr:\n{(e.stderr or b'')[-4000:]!r}"
        )
    recorder.close()
    run = Run(command, proc.returncode, proc.stdout, proc.stderr, recorder)
    run.remote = remote_addresses(log.read_text(errors="replace"))
    assert run.remote == [], f"{client} tried to leave the machine: {run.remote}\n{run.explain()}"
    return run


def sim_reply(upstream: str, text: str) -> str:
    """The simulated Google's default answer to a last user turn `text`."""
    return f"Simulated {upstream} reply to: {text}"


def streamed_texts(exchange: Exchange) -> list[str]:
    """The text pieces of an SSE answer, whatever the API (Anthropic, Chat, Responses,
    Gemini): each event's text delta, in order."""
    pieces = []
    for event in exchange.sse_events():
        if not isinstance(event, dict):
            continue
        # Anthropic: content_block_delta / text_delta
        delta = event.get("delta")
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            pieces.append(delta.get("text", ""))
        # OpenAI Responses: response.output_text.delta
        elif event.get("type") == "response.output_text.delta":
            pieces.append(event.get("delta", ""))
        # OpenAI Chat Completions: choices[].delta.content
        elif isinstance(event.get("choices"), list):
            for choice in event["choices"]:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    pieces.append(content)
        # Gemini: candidates[].content.parts[].text (not thoughts)
        elif isinstance(event.get("candidates"), list):
            for candidate in event["candidates"]:
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if part.get("text") and not part.get("thought"):
                        pieces.append(part["text"])
    return [p for p in pieces if p]


def assert_streamed(run: Run, expected: str) -> None:
    """Some model call of `run` was answered as an SSE stream whose text, in several
    events, adds up to `expected`."""
    streams = [
        e
        for e in run.recorder.generation_calls()
        if e.status == 200 and e.content_type.startswith("text/event-stream")
    ]
    assert streams, f"no streamed answer\n{run.explain()}"
    matching = [e for e in streams if "".join(streamed_texts(e)) == expected]
    assert matching, (
        f"no stream adds up to {expected!r}: "
        f"{[''.join(streamed_texts(e)) for e in streams]}\n{run.explain()}"
    )
    assert len(streamed_texts(matching[-1])) >= 2, (
        f"the answer came in one piece: {streamed_texts(matching[-1])}"
    )


def notes_with_a_secret(tmp_path: Path) -> tuple[Path, str]:
    """`<tmp_path>/project/notes.txt` holding a line no prompt contains: the path and
    the line. A tool turn passes only if the client really read the file."""
    workdir = tmp_path / "project"
    workdir.mkdir(exist_ok=True)
    secret = f"the launch code is {uuid.uuid4().hex}"
    notes = workdir / "notes.txt"
    notes.write_text(f"{secret}\n")
    return notes, secret
