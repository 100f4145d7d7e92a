#!/usr/bin/env python3
"""Checks that the operator docs name only what agm has.

Usage: deploy/check-docs.py AGM_BIN [EXTRA.md ...]

EXTRA files are checked as if they were in docs/operations/ (deploy/test.sh feeds it a
page full of made-up names, which must all be reported).

Reads docs/operations/*.md, the README's "Running as a service" section and the
comments of deploy/Dockerfile and the systemd units, and checks:

- every `agm …` command (in code blocks and inline code) is a real command of AGM_BIN,
  and each of its --flags is one that command takes (`agm <command> --help`);
- every metric name is in docs/METRICS.md (histograms with _bucket/_sum/_count);
- every `Agm…` alert ships in deploy/prometheus/alerts.yml or is defined (`alert: Name`)
  in the docs;
- every `[section] key` and AGM_SECTION__KEY is a key of the default config;
- every relative link resolves to a file, and an anchor to a heading of it.

Prints one line per problem and exits 1, or a summary and exits 0.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTIONS = (
    "server", "google", "routing", "safe_mode", "circuit_breaker", "project_id",
    "storage", "logging", "updates",
)
METRIC = re.compile(r"(?<![\w.])(?:agm|api_call|project_id|safe_mode|circuit_breaker)_[a-z0-9_]+(?![\w(])")
ALERT = re.compile(r"\bAgm[A-Z][A-Za-z0-9]+\b")
CONFIG_KEY = re.compile(r"`\[(" + "|".join(SECTIONS) + r")\] ([a-z_]+)")
ENV_KEY = re.compile(r"\bAGM_([A-Z_]+?)__([A-Z_]+)\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SEPARATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "<", "&"}

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def sources(extra: list[str]) -> list[tuple[str, str]]:
    """(name, markdown-ish text) of everything checked."""
    out = [(str(p.relative_to(REPO)), p.read_text()) for p in sorted((REPO / "docs" / "operations").glob("*.md"))]
    out += [(f"docs/operations/{Path(p).name}", Path(p).read_text()) for p in extra]
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^### Running as a service\n(.*?)(?=^#)", readme, re.S | re.M)
    if match is None:
        problem("README.md", "no '### Running as a service' section")
    else:
        out.append(("README.md (Running as a service)", match.group(0)))
    for name in ("deploy/Dockerfile", "deploy/agm.service", "deploy/agm-user.service"):
        # Command examples are the indented comment lines.
        examples = [line[1:].strip() for line in (REPO / name).read_text().splitlines() if line.startswith("#  ")]
        out.append((name, "```sh\n" + "\n".join(examples) + "\n```\n"))
    return out


def command_texts(text: str) -> list[str]:
    """Shell lines from fenced code blocks (not yaml/ini/json) and inline code spans."""
    out: list[str] = []
    fence = None
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else (stripped[3:].strip() or "sh")
            continue
        if fence is not None:
            if fence in ("yaml", "ini", "json", "toml"):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            out.append(pending + stripped)
            pending = ""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    out += [span for span in re.findall(r"`([^`\n]+)`", prose) if re.match(r"(sudo .*)?\S*\bagm ", span)]
    return out


def tokens(line: str) -> list[str]:
    line = re.sub(r"\s#.*$", "", line)  # a trailing comment
    try:
        return shlex.split(line, posix=True)
    except ValueError:
        return line.split()


@cache
def help_text(path: tuple[str, ...]) -> str | None:
    run = subprocess.run([AGM, *path, "--help"], capture_output=True, text=True, timeout=20)
    return run.stdout if run.returncode == 0 else None


def subcommands(help_out: str) -> set[str]:
    names = set()
    inside = False
    for line in help_out.splitlines():
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            word = line.split()[0] if line.split() else ""
            if word and word != "help":
                names.add(word)
    return names


def invocations(words: list[str]) -> list[list[str]]:
    """The argument lists of every agm run in one shell line."""
    found = []
    for i, word in enumerate(words):
        if word != "agm" and not word.endswith("/agm"):
            continue
        if word.endswith("/agm") and ("/var/lib/" in word or word.startswith("~") or ":" in word):
            continue  # a data dir or a volume, not the binary
        prev = words[i - 1] if i > 0 else ""
        docker_image = "docker" in words[:i] and "run" in words[:i] and not prev.startswith("-")
        at_command = (
            i == 0
            or prev in SEPARATORS
            or prev in ("sudo", "exec", "env", "time", "$(")
            or re.match(r"^[A-Z_][A-Z0-9_]*=", prev) is not None
            or (i >= 3 and words[i - 3] == "sudo" and prev != "agm" and words[i - 2] == "-u")
            or (i >= 2 and words[i - 2] == "-u" and words[i - 3 : i - 2] == ["sudo"])
        )
        if not (at_command or docker_image):
            continue
        args = []
        for arg in words[i + 1 :]:
            if arg in SEPARATORS:
                break
            args.append(arg)
        if args:
            found.append(args)
    return found


def check_invocation(where: str, args: list[str]) -> bool:
    rest = list(args)
    while rest and rest[0] in ("--config", "--force-new-key"):
        rest = rest[2:] if rest[0] == "--config" else rest[1:]
    if rest[:1] == ["…"]:
        return True  # "agm …": any command
    path: list[str] = []
    while True:
        out = help_text(tuple(path))
        if out is None:
            problem(where, f"`agm {' '.join(path)}` is not a command")
            return False
        names = subcommands(out)
        if rest and rest[0] in names:
            path.append(rest.pop(0))
            continue
        if names and not (rest and rest[0].startswith("-")):
            shown = " ".join(args)
            problem(where, f"`agm {shown}`: `{rest[0] if rest else ''}` is not a command of `agm {' '.join(path)}`")
            return False
        break
    for arg in rest:
        if arg.startswith("--") and len(arg) > 2:
            flag = arg.split("=", 1)[0]
            if not re.search(rf"(^|[\s,]){re.escape(flag)}\b", out):
                problem(where, f"`agm {' '.join(args)}`: `agm {' '.join(path)}` has no {flag}")
                return False
    return True


def metric_names() -> set[str]:
    names: set[str] = set()
    for line in (REPO / "docs" / "METRICS.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        last_full = ""
        for token in re.findall(r"`([^`]+)`", first):
            token = re.sub(r"\{.*\}", "", token)
            if token.startswith("_") and last_full:
                names.add(last_full.rsplit("_", 1)[0] + token)
            else:
                names.add(token)
                last_full = token
    return names


def slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.M)}


def main() -> int:
    global AGM
    if len(sys.argv) < 2:
        print("usage: check-docs.py AGM_BIN [EXTRA.md ...]", file=sys.stderr)
        return 2
    AGM = sys.argv[1]

    metrics = metric_names()
    shipped_alerts = set(re.findall(r"alert: (\w+)", (REPO / "deploy/prometheus/alerts.yml").read_text()))
    config = tomllib.loads((REPO / "crates/agm-server/src/default_config.toml").read_text())
    counted = {"commands": 0, "metrics": 0, "alerts": 0, "config keys": 0, "links": 0}

    docs = sources(sys.argv[2:])
    defined_alerts = set()
    for _, text in docs:
        defined_alerts |= set(re.findall(r"alert: (\w+)", text))

    for name, text in docs:
        for line in command_texts(text):
            for args in invocations(tokens(line)):
                check_invocation(name, args)
                counted["commands"] += 1
        for metric in METRIC.findall(text):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            prefix = metric.endswith("_") and any(m.startswith(metric) for m in metrics)
            if metric not in metrics and base not in metrics and not prefix:
                problem(name, f"metric {metric} is not in docs/METRICS.md")
            counted["metrics"] += 1
        for alert in ALERT.findall(text):
            if alert not in shipped_alerts and alert not in defined_alerts:
                problem(name, f"alert {alert} neither ships in deploy/prometheus/alerts.yml nor is defined here")
            counted["alerts"] += 1
        for section, key in CONFIG_KEY.findall(text):
            if key not in config.get(section, {}):
                problem(name, f"[{section}] {key} is not a config key")
            counted["config keys"] += 1
        for section, key in ENV_KEY.findall(text):
            if key.lower() not in config.get(section.lower(), {}):
                problem(name, f"AGM_{section}__{key} is not a config key")
            counted["config keys"] += 1
        if name.endswith(".md") and "/" in name:
            base_dir = (REPO / name).parent
            for target in LINK.findall(text):
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                path = (base_dir / file_part).resolve() if file_part else (REPO / name)
                if not path.exists():
                    problem(name, f"link {target}: no such file")
                elif anchor and path.is_file() and path.suffix == ".md" and anchor not in anchors(path):
                    problem(name, f"link {target}: no heading #{anchor} in {path.relative_to(REPO)}")
                counted["links"] += 1

    for message in problems:
        print(message)
    if problems:
        return 1
    summary = ", ".join(f"{n} {what}" for what, n in counted.items())
    print(f"operator docs checked: {summary}, all real")
    return 0


AGM = ""

if __name__ == "__main__":
    sys.exit(main())
