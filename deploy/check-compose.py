#!/usr/bin/env python3
"""Checks deploy/compose.yaml and deploy/nginx.conf without a container engine.

Usage: deploy/check-compose.py [--compose PATH] [--nginx PATH]

- three agm services (agm-1..3) built from deploy/Dockerfile, each with a data-dir
  volume of its own at /var/lib/agm (agm serve locks its data dir);
- each configured for cluster mode with exactly the keys scripts rely on:
  AGM_STORAGE__BACKEND=postgres, AGM_STORAGE__POSTGRES_URL=postgres://…,
  AGM_CLUSTER__REDIS_URL=redis://…, and the shared AGM_SEAL_KEY, every secret taken from
  a required variable (${VAR:?…}), none written in the file; each key is one of agm's
  default config;
- postgres, redis and the load balancer on pinned image tags (never `latest` or none),
  postgres and redis with health checks that agm waits for (service_healthy);
- the load balancer mounts deploy/nginx.conf, whose upstream lists exactly the agm
  services on agm's port, with streaming left unbuffered and a long read timeout, and
  publishes that port on loopback.

Prints one line per failed check and exits 1, or prints a summary and exits 0.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("deploy/check-compose.py needs PyYAML: pip install pyyaml (Debian: apt-get install python3-yaml)")

REPO = Path(__file__).resolve().parent.parent
PORT = 8045
REPLICAS = ["agm-1", "agm-2", "agm-3"]
SECRET = re.compile(r"\$\{AGM_[A-Z_]+:\?[^}]+\}")

problems: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def pinned(image: str | None) -> bool:
    if not image or "@sha256:" in (image or ""):
        return bool(image)
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and any(c.isdigit() for c in tag)


def default_keys() -> set[str]:
    text = (REPO / "crates/agm-server/src/default_config.toml").read_text()
    config = tomllib.loads(text)
    return {
        f"AGM_{section.upper()}__{key.upper()}"
        for section, table in config.items()
        if isinstance(table, dict)
        for key in table
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compose", default=str(REPO / "deploy/compose.yaml"))
    parser.add_argument("--nginx", default=str(REPO / "deploy/nginx.conf"))
    args = parser.parse_args()
    text = Path(args.compose).read_text()
    compose = yaml.safe_load(text)
    services = compose.get("services", {})
    keys = default_keys()

    volumes = []
    for name in REPLICAS:
        s = services.get(name)
        check(s is not None, f"no service {name}")
        if s is None:
            continue
        build = s.get("build") or {}
        check(build.get("dockerfile") == "deploy/Dockerfile", f"{name}: not built from deploy/Dockerfile")
        mounts = [v for v in s.get("volumes", []) if str(v).endswith(":/var/lib/agm")]
        check(len(mounts) == 1, f"{name}: no data-dir volume of its own at /var/lib/agm")
        volumes += [str(v).split(":")[0] for v in mounts]
        env = s.get("environment") or {}
        check(env.get("AGM_STORAGE__BACKEND") == "postgres", f"{name}: AGM_STORAGE__BACKEND is not postgres")
        check(str(env.get("AGM_STORAGE__POSTGRES_URL", "")).startswith("postgres://"), f"{name}: no AGM_STORAGE__POSTGRES_URL=postgres://…")
        check(str(env.get("AGM_CLUSTER__REDIS_URL", "")).startswith(("redis://", "rediss://")), f"{name}: no AGM_CLUSTER__REDIS_URL=redis://…")
        check("AGM_SEAL_KEY" in env, f"{name}: no AGM_SEAL_KEY (every replica needs the same seal key)")
        for key, value in env.items():
            if key != "AGM_SEAL_KEY":
                check(key in keys, f"{name}: {key} is not a key of agm's config")
            if key == "AGM_SEAL_KEY" or "PASSWORD" in key or re.search(r"://[^/@]*:[^@]+@", str(value)):
                check(bool(SECRET.search(str(value))), f"{name}: {key} holds a secret written in the file; take it from ${{VAR:?…}}")
        depends = s.get("depends_on") or {}
        for needed in ("postgres", "redis"):
            cond = depends.get(needed, {}) if isinstance(depends, dict) else {}
            check(cond.get("condition") == "service_healthy", f"{name}: does not wait for {needed} to be healthy")
    check(len(set(volumes)) == len(REPLICAS), "the agm replicas share a data-dir volume: each needs its own")

    for name in ("postgres", "redis", "lb"):
        s = services.get(name)
        check(s is not None, f"no service {name}")
        if s is None:
            continue
        check(pinned(s.get("image")), f"{name}: image {s.get('image')!r} is not pinned to a version")
        if name != "lb":
            check("healthcheck" in s, f"{name}: no health check")
    for name, s in services.items():
        for key, value in (s.get("environment") or {}).items():
            if "PASSWORD" in key:
                check(bool(SECRET.search(str(value))), f"{name}: {key} is written in the file; take it from ${{VAR:?…}}")

    lb = services.get("lb") or {}
    check(any(str(v).startswith("./nginx.conf:/etc/nginx/nginx.conf") for v in lb.get("volumes", [])),
          "lb: does not mount deploy/nginx.conf")
    check(any(str(p).endswith(f":{PORT}:{PORT}") or str(p) == f"{PORT}:{PORT}" for p in lb.get("ports", [])),
          f"lb: does not publish port {PORT}")

    nginx = Path(args.nginx).read_text()
    nginx = re.sub(r"#.*", "", nginx)
    upstream = re.search(r"upstream\s+agm\s*\{(.*?)\}", nginx, re.S)
    check(upstream is not None, "nginx.conf: no `upstream agm { … }`")
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(1), re.M) if upstream else []
    check(sorted(servers) == [(r, str(PORT)) for r in REPLICAS],
          f"nginx.conf: the upstream lists {servers}, not the three replicas on port {PORT}")
    check(re.search(r"proxy_pass\s+http://agm\s*;", nginx) is not None, "nginx.conf: nothing is passed to the agm upstream")
    check(re.search(rf"listen\s+{PORT}\s*;", nginx) is not None, f"nginx.conf: does not listen on {PORT}")
    check(re.search(r"proxy_buffering\s+off\s*;", nginx) is not None, "nginx.conf: streams are buffered (proxy_buffering off)")
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s\s*;", nginx)
    check(timeout is not None and int(timeout.group(1)) >= 60, "nginx.conf: proxy_read_timeout under 60 s cuts quiet streams")
    check("non_idempotent" not in nginx, "nginx.conf: non_idempotent would send a POST twice")

    if problems:
        for p in problems:
            print(p)
        return 1
    print(f"compose file checked: {len(REPLICAS)} replicas in cluster mode, postgres, redis and nginx pinned, the upstream matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
