#!/usr/bin/env python3
"""Checks deploy/Dockerfile and .dockerignore without a container engine.

Usage: deploy/check-dockerfile.py [--dockerfile PATH] [--healthcheck-port N]

- every FROM names a pinned tag (or a digest), never `latest` or no tag; the Rust image's
  version is at least the workspace's rust-version (Cargo.toml);
- no ADD at all (COPY only: no URL, no archive unpacked behind your back);
- the final stage runs as a non-root USER, declares the data dir (AGM_DATA_DIR) as a
  VOLUME, EXPOSEs the port it listens on (AGM_SERVER__PORT), binds 0.0.0.0 and keeps the
  sealing key in a file;
- the binary the build stage writes is the one the final stage copies, and the one the
  ENTRYPOINT runs;
- a HEALTHCHECK asks /healthz on that port; with --healthcheck-port N, its command is
  run for real against a gateway on 127.0.0.1:N (it must pass) and against a closed
  port (it must fail);
- .dockerignore keeps target/, .venv/ and node_modules out of the build context.

Prints one line per failed check and exits 1, or prints a summary and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def env_pairs(args: str) -> dict[str, str]:
    pairs = {}
    for token in shlex.split(args):
        if "=" in token:
            key, _, value = token.partition("=")
            pairs[key] = value
    return pairs


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def main() -> int:
    parser = argparse.ArgumentParser(description="Checks deploy/Dockerfile and .dockerignore.")
    parser.add_argument("--dockerfile", type=Path, default=DOCKERFILE, help="the file to check")
    parser.add_argument("--healthcheck-port", type=int, help="run the HEALTHCHECK against 127.0.0.1:N")
    options = parser.parse_args()
    port_arg = options.healthcheck_port

    failures: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            failures.append(message)

    steps = instructions(options.dockerfile.read_text())
    stages: list[list[tuple[str, str]]] = []
    stage_names: list[str] = []
    for word, args in steps:
        if word == "FROM":
            stages.append([])
            parts = args.split()
            image = parts[0]
            stage_names.append(parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else "")
            name, _, tag = image.partition(":")
            pinned = "@sha256:" in image or (tag and tag != "latest")
            check(pinned, f"FROM {image}: pin a tag (or a digest), not latest or none")
            if name in ("rust", "docker.io/library/rust"):
                workspace = tomllib.loads((REPO / "Cargo.toml").read_text())
                need = version_tuple(workspace["workspace"]["package"]["rust-version"])
                have = version_tuple(tag.split("-")[0])
                check(
                    have[: len(need)] >= need,
                    f"FROM {image}: older than the workspace's rust-version {need}",
                )
        if not stages:
            failures.append(f"{word} before the first FROM")
            continue
        stages[-1].append((word, args))
        check(word != "ADD", f"ADD {args}: use COPY (ADD fetches URLs and unpacks archives)")

    check(len(stages) >= 2, "not a multi-stage build: build in one stage, run in another")
    final = stages[-1] if stages else []
    build = stages[0] if stages else []
    final_words = [w for w, _ in final]

    env: dict[str, str] = {}
    for word, args in final:
        if word == "ENV":
            env.update(env_pairs(args))

    users = [args for word, args in final if word == "USER"]
    check(bool(users), "the final stage has no USER: it would run as root")
    if users:
        user = users[-1].split(":")[0]
        check(user not in ("root", "0"), f"USER {users[-1]}: run as a non-root user")
        user_at = max(i for i, w in enumerate(final_words) if w == "USER")
        later_runs = [i for i, w in enumerate(final_words) if w == "RUN" and i > user_at]
        check(not later_runs, "RUN after USER in the final stage: set the user last")

    data_dir = env.get("AGM_DATA_DIR")
    check(bool(data_dir), "ENV AGM_DATA_DIR is not set in the final stage")
    volumes: list[str] = []
    for word, args in final:
        if word == "VOLUME":
            volumes += exec_form(args) or args.split()
    check(data_dir in volumes, f"no VOLUME for the data dir {data_dir} (VOLUME {volumes})")
    check(env.get("AGM_SERVER__BIND") == "0.0.0.0", "AGM_SERVER__BIND=0.0.0.0 is not set: the port would be unreachable")
    check(env.get("AGM_STORAGE__KEY_STORE") == "file", "AGM_STORAGE__KEY_STORE=file is not set: a container has no OS keychain")
    port = env.get("AGM_SERVER__PORT", "8045")
    exposed = " ".join(args for word, args in final if word == "EXPOSE").split()
    check(port in [p.split("/")[0] for p in exposed], f"EXPOSE {port} is missing (EXPOSE {exposed})")

    # The binary: built at target/release/agm, copied out of the build stage, run.
    build_runs = " ".join(args for word, args in build if word == "RUN")
    out_match = re.search(r"target/release/agm\s+(\S+)", build_runs)
    check(
        "cargo build --release --locked --bin agm" in build_runs,
        "the build stage does not run `cargo build --release --locked --bin agm`",
    )
    check(out_match is not None, "the build stage does not copy target/release/agm anywhere")
    copies = [args.split() for word, args in final if word == "COPY"]
    from_build = [c for c in copies if c and c[0].startswith("--from=")]
    check(len(from_build) == 1, f"expected one COPY --from=<build stage> in the final stage, found {len(from_build)}")
    entry = next((exec_form(args) for word, args in final if word == "ENTRYPOINT"), None)
    check(bool(entry), "no ENTRYPOINT in exec form")
    if from_build and out_match and entry:
        copy = from_build[0]
        check(copy[0] == f"--from={stage_names[0]}", f"COPY {copy[0]}: not the build stage ({stage_names[0]})")
        check(copy[1] == out_match.group(1), f"COPY takes {copy[1]}, but the build writes {out_match.group(1)}")
        check(copy[-1] == entry[0], f"COPY writes {copy[-1]}, but ENTRYPOINT runs {entry[0]}")
    cmd = next((exec_form(args) for word, args in final if word == "CMD"), None)
    check(cmd == ["serve"], f"CMD should be [\"serve\"], not {cmd}")

    # The health check.
    health = [args for word, args in final if word == "HEALTHCHECK"]
    check(len(health) == 1, "the final stage needs one HEALTHCHECK")
    health_cmd: list[str] | None = None
    if health:
        _, _, rest = health[0].partition("CMD")
        health_cmd = exec_form(rest.strip())
        check(health_cmd is not None, "HEALTHCHECK CMD is not in exec form")
        text = " ".join(health_cmd or [])
        check("/healthz" in text, "HEALTHCHECK does not ask /healthz")
        check(f"/{port}" in text or f":{port}" in text, f"HEALTHCHECK does not use port {port}")
        check(
            not any(tool in text.split()[0:1] for tool in ("curl", "wget")),
            "HEALTHCHECK needs curl/wget, which the image does not have",
        )

    # .dockerignore
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for needed in ("target/", ".venv/", "node_modules/", "tests/e2e/clients/node_modules/"):
        check(needed in ignored, f".dockerignore does not list {needed}")

    # The health check's command, run for real.
    if port_arg is not None and health_cmd:
        live = [part.replace(f"/{port}", f"/{port_arg}") for part in health_cmd]
        ok = subprocess.run(live, capture_output=True, timeout=10).returncode == 0
        check(ok, f"the HEALTHCHECK command failed against a running gateway on 127.0.0.1:{port_arg}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        dead = [part.replace(f"/{port}", f"/{closed}") for part in health_cmd]
        failed = subprocess.run(dead, capture_output=True, timeout=10).returncode != 0
        check(failed, "the HEALTHCHECK command passes with nothing listening")

    for message in failures:
        print(f"Dockerfile check: {message}")
    if failures:
        return 1
    ran = " (its HEALTHCHECK run against a live gateway)" if port_arg is not None else ""
    print(f"Dockerfile checks passed{ran}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
