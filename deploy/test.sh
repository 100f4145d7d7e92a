#!/usr/bin/env bash
# Tests what deploy/ ships, without touching the real system: the install script in a
# temporary root (twice: the second run must change nothing), the systemd units with
# systemd-analyze, the launchd plist, the Dockerfile and the cluster's compose file (no
# container engine needed) and the operator docs' commands and metric names.
#
#   AGM_BIN=target/debug/agm deploy/test.sh
#
# AGM_BIN is an agm binary already built (default target/debug/agm). Needs bash,
# python3 and systemd-analyze; shellcheck is run when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

agm_bin=${AGM_BIN:-target/debug/agm}
case "$agm_bin" in /*) ;; *) agm_bin="$repo/$agm_bin" ;; esac
[ -x "$agm_bin" ] || { echo "deploy/test.sh: no agm binary at $agm_bin: run cargo build --bin agm, or set AGM_BIN" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "deploy/test.sh: systemd-analyze is missing: apt-get install systemd" >&2; exit 1; }

passed=0
failed=0
skipped=0
skip() { skipped=$((skipped + 1)); printf '  skip  %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }
expect() { # expect DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# The real system's user database and units: compared at the end, they must not change.
host_state() { { cat /etc/passwd /etc/group /etc/systemd/system/agm.service 2>/dev/null || true; } | sha256sum; }
host_before=$(host_state)

work=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then kill "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A listing of a tree: type, mode, owner, size and checksum of every entry.
listing() {
  (cd "$1" && find . -print0 | sort -z | while IFS= read -r -d '' f; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      printf '%s %s\n' "$(stat -c '%F %a %u:%g %s' "$f")" "$(sha256sum "$f" | cut -c1-64) $f"
    else
      printf '%s %s\n' "$(stat -c '%F %a %u:%g' "$f")" "$f"
    fi
  done)
}
# http_get URL: the body of any answer (a 503 too), or a failure when nothing answers.
http_get() {
  python3 -c 'import sys, urllib.error, urllib.request
try:
    body = urllib.request.urlopen(sys.argv[1], timeout=5).read()
except urllib.error.HTTPError as e:
    body = e.read()
sys.stdout.write(body.decode())' "$1" 2>/dev/null
}
mode_of() { stat -c '%a' "$1"; }
owner_of() { stat -c '%u:%g' "$1"; }
# A staging root with an empty user database (so useradd --prefix can add agm) and the
# host's systemd units (so systemd-analyze verify --root finds the targets).
new_root() {
  local r
  r=$(mktemp -d "$work/root.XXXXXX")
  mkdir -p "$r/etc" "$r/usr/lib/systemd"
  touch "$r/etc/passwd" "$r/etc/group" "$r/etc/shadow" "$r/etc/gshadow"
  cp -a /usr/lib/systemd/system "$r/usr/lib/systemd/"
  echo "$r"
}

echo "==> install.sh --system into a temporary root"
root=$(new_root)
first="$work/first.out"
if deploy/install.sh --root "$root" --binary "$agm_bin" >"$first" 2>&1; then
  ok "first run exits 0"
else
  fail "first run exits 0: $(cat "$first")"
fi
agm_ids=$(awk -F: '$1 == "agm" { print $3 ":" $4 }' "$root/etc/passwd")
# shellcheck disable=SC2016 # awk's own $fields
expect "user agm created in the root's passwd (useradd --prefix), a system uid, no login" \
  awk -F: '$1 == "agm" && $3 < 1000 && $6 == "/var/lib/agm" && $7 ~ /nologin$/ { found = 1 } END { exit !found }' "$root/etc/passwd"
expect "binary /usr/local/bin/agm: 755, root, the same bytes" \
  bash -c "[ $(mode_of "$root/usr/local/bin/agm") = 755 ] && [ $(owner_of "$root/usr/local/bin/agm") = 0:0 ] && cmp -s '$agm_bin' '$root/usr/local/bin/agm'"
expect "config dir /etc/agm: 750, root:agm" \
  test "$(mode_of "$root/etc/agm") $(owner_of "$root/etc/agm")" = "750 0:${agm_ids#*:}"
expect "config /etc/agm/config.toml: 640, root:agm" \
  test "$(mode_of "$root/etc/agm/config.toml") $(owner_of "$root/etc/agm/config.toml")" = "640 0:${agm_ids#*:}"
expect "data dir /var/lib/agm: 700, owned by agm" \
  test "$(mode_of "$root/var/lib/agm") $(owner_of "$root/var/lib/agm")" = "700 $agm_ids"
expect "unit /etc/systemd/system/agm.service: 644, byte for byte deploy/agm.service" \
  bash -c "[ $(mode_of "$root/etc/systemd/system/agm.service") = 644 ] && cmp -s deploy/agm.service '$root/etc/systemd/system/agm.service'"
shown="$work/config-show.out"
"$agm_bin" --config "$root/etc/agm/config.toml" config show >"$shown"
expect "the config loads, with data_dir /var/lib/agm and key_store file" \
  bash -c "grep -qx 'data_dir = \"/var/lib/agm\"' '$shown' && grep -qx 'key_store = \"file\"' '$shown'"
unit="$root/etc/systemd/system/agm.service"
expect "the unit runs the installed binary with the installed config, as agm" \
  bash -c "grep -qx 'ExecStart=/usr/local/bin/agm --config /etc/agm/config.toml serve' '$unit' && grep -qx 'User=agm' '$unit'"
expect "the unit may write the config's data dir (ReadWritePaths=, StateDirectory=)" \
  bash -c "grep -qx 'ReadWritePaths=/var/lib/agm' '$unit' && grep -qx 'StateDirectory=agm' '$unit'"
for key in ProtectSystem=strict NoNewPrivileges=true PrivateTmp=true ProtectHome=true Restart=on-failure LimitNOFILE=65536; do
  expect "the unit sets $key" grep -qx "$key" "$unit"
done
expect "the first run prints the next steps (accounts add, doctor, systemctl enable --now agm)" \
  bash -c "grep -q 'accounts add --no-browser' '$first' && grep -q ' doctor' '$first' && grep -q 'systemctl enable --now agm' '$first'"

echo "==> systemd-analyze on the installed units"
verify="$work/verify.out"
if systemd-analyze verify --root="$root" "$unit" >"$verify" 2>&1 && [ ! -s "$verify" ]; then
  ok "systemd-analyze verify: agm.service as installed, no warning"
else
  fail "systemd-analyze verify agm.service: $(cat "$verify")"
fi
security="$work/security.out"
if systemd-analyze security --offline=true --root="$root" --threshold=25 agm.service >"$security" 2>&1; then
  ok "systemd-analyze security: exposure $(grep -o 'level for agm.service: [0-9.]*' "$security" | awk '{print $NF}') (at most 2.5)"
else
  fail "systemd-analyze security: exposure above 2.5: $(tail -1 "$security")"
fi
# The verifier must see a broken unit: a misspelt key is a warning it prints.
sed 's/^ProtectSystem=strict/ProtectSytem=strict/' deploy/agm.service >"$unit"
systemd-analyze verify --root="$root" "$unit" >"$verify" 2>&1 || true
if grep -q "Unknown key" "$verify"; then
  ok "systemd-analyze verify reports a misspelt key (this check can fail)"
else
  fail "systemd-analyze verify did not report a misspelt key"
fi
cp -p deploy/agm.service "$unit"

echo "==> the installed files serve as user agm (no systemd here: the unit's command, under setpriv)"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  chmod 755 "$work" "$root" # mktemp's 0700 would keep the agm user out of the root itself
  serve_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The unit's ExecStart, with the data dir and port moved into the test (the config
  # names /var/lib/agm) and no update check.
  AGM_DATA_DIR="$root/var/lib/agm" AGM_UPDATES__CHECK=false \
    setpriv --reuid="${agm_ids%:*}" --regid="${agm_ids#*:}" --clear-groups \
    "$root/usr/local/bin/agm" --config "$root/etc/agm/config.toml" serve --port "$serve_port" >"$work/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 100); do
    http_get "http://127.0.0.1:$serve_port/readyz" >"$work/readyz.json" && break
    sleep 0.1
  done
  http_get "http://127.0.0.1:$serve_port/healthz" >"$work/healthz.json" || true
  expect "agm serve runs as agm, reads the 0640 config through its group, answers /healthz" \
    grep -q '"status":"ok"' "$work/healthz.json"
  expect "/readyz says what is missing (no account yet)" grep -q 'agm accounts add' "$work/readyz.json"
  expect "agm.db, secret.key and agm.lock are the agm user's, mode 600" \
    bash -c "for f in agm.db secret.key agm.lock; do [ \"\$(stat -c '%a %u:%g' '$root/var/lib/agm/'\$f)\" = '600 $agm_ids' ] || exit 1; done"
  kill -TERM "$serve_pid"
  rc=0
  wait "$serve_pid" || rc=$?
  expect "SIGTERM stops it with exit 0 (systemctl stop)" test "$rc" = 0
else
  skip "not root, or no setpriv: the installed service is not started"
fi

echo "==> install.sh again: nothing changes"
before="$work/before.list"
listing "$root" >"$before"
second="$work/second.out"
deploy/install.sh --root "$root" --binary "$agm_bin" >"$second" 2>&1 || fail "second run exits 0: $(cat "$second")"
listing "$root" >"$work/after.list"
if diff -u "$before" "$work/after.list" >"$work/diff.out"; then
  ok "second run: every file, mode, owner and checksum unchanged"
else
  fail "second run changed files: $(cat "$work/diff.out")"
fi
expect "second run says nothing changed, and creates, updates or warns of nothing" \
  bash -c "grep -q '^Nothing changed' '$second' && ! grep -Eq '^  (created|updated|warning) ' '$second'"

echo "==> an edited config is kept; a changed unit, mode or binary is put back"
echo '# edited by the operator' >>"$root/etc/agm/config.toml"
echo '# an old version' >>"$unit"
echo 'not agm' >>"$root/usr/local/bin/agm"
chmod 755 "$root/var/lib/agm"
third="$work/third.out"
deploy/install.sh --root "$root" --binary "$agm_bin" >"$third" 2>&1 || fail "third run exits 0: $(cat "$third")"
expect "the edited config is kept and reported unchanged" \
  bash -c "tail -1 '$root/etc/agm/config.toml' | grep -q 'edited by the operator' && grep -q 'unchanged /etc/agm/config.toml' '$third'"
expect "the changed unit is replaced and reported updated" \
  bash -c "cmp -s deploy/agm.service '$unit' && grep -q 'updated   /etc/systemd/system/agm.service' '$third'"
expect "the changed binary is replaced and reported updated" \
  bash -c "cmp -s '$agm_bin' '$root/usr/local/bin/agm' && grep -q 'updated   /usr/local/bin/agm' '$third'"
expect "the data dir's mode is set back to 700" test "$(mode_of "$root/var/lib/agm")" = 700

echo "==> install.sh --dry-run changes nothing"
dry_root=$(new_root)
listing "$dry_root" >"$work/dry-before.list"
dry="$work/dry.out"
deploy/install.sh --root "$dry_root" --binary "$agm_bin" --dry-run >"$dry" 2>&1 || fail "dry run exits 0: $(cat "$dry")"
listing "$dry_root" >"$work/dry-after.list"
expect "dry run: the root is untouched" cmp -s "$work/dry-before.list" "$work/dry-after.list"
expect "dry run: says what would be created" bash -c "grep -q 'would be  /usr/local/bin/agm (created)' '$dry' && grep -q '^Dry run:' '$dry'"

echo "==> install.sh --user into a temporary root"
user_root=$(mktemp -d "$work/user.XXXXXX")
user_out="$work/user.out"
HOME=/home/tester deploy/install.sh --user --root "$user_root" --binary "$agm_bin" >"$user_out" 2>&1 ||
  fail "user install exits 0: $(cat "$user_out")"
home="$user_root/home/tester"
expect "user: ~/.local/bin/agm 755, ~/.config/agm 700, config 600, ~/.local/share/agm 700" \
  test "$(mode_of "$home/.local/bin/agm") $(mode_of "$home/.config/agm") $(mode_of "$home/.config/agm/config.toml") $(mode_of "$home/.local/share/agm")" = "755 700 600 700"
expect "user: the unit is byte for byte deploy/agm-user.service" cmp -s deploy/agm-user.service "$home/.config/systemd/user/agm.service"
expect "user: the config is agm's default config" \
  bash -c "'$agm_bin' --config '$work/default.toml' config init >/dev/null && cmp -s '$work/default.toml' '$home/.config/agm/config.toml'"
verify_user="$work/verify-user.out"
runtime_dir=$(mktemp -d "$work/runtime.XXXXXX")
# %h is the user manager's $HOME: pointing it into the root makes ExecStart the
# installed binary, so the unit is verified as installed, unchanged.
if HOME="$home" XDG_RUNTIME_DIR="$runtime_dir" systemd-analyze --user verify \
  "$home/.config/systemd/user/agm.service" >"$verify_user" 2>&1 && [ ! -s "$verify_user" ]; then
  ok "systemd-analyze --user verify: agm-user.service as installed, no warning"
else
  fail "systemd-analyze --user verify agm-user.service: $(cat "$verify_user")"
fi
listing "$user_root" >"$work/user-before.list"
HOME=/home/tester deploy/install.sh --user --root "$user_root" --binary "$agm_bin" >"$user_out" 2>&1 ||
  fail "second user install exits 0: $(cat "$user_out")"
listing "$user_root" >"$work/user-after.list"
expect "user: the second run changes nothing" \
  bash -c "cmp -s '$work/user-before.list' '$work/user-after.list' && grep -q '^Nothing changed' '$user_out'"

echo "==> install.sh failures are one line that says what to do"
# one_line EXPECTED_EXIT PATTERN ARGS...: stderr is one line matching PATTERN.
one_line() {
  local want=$1 pattern=$2 rc=0
  shift 2
  deploy/install.sh "$@" >/dev/null 2>"$work/err" || rc=$?
  if [ "$rc" = "$want" ] && [ "$(wc -l <"$work/err")" = 1 ] && grep -Eq -- "$pattern" "$work/err"; then
    ok "install.sh $* -> exit $rc: $(cat "$work/err")"
  else
    fail "install.sh $*: exit $rc (want $want), stderr: $(cat "$work/err")"
  fi
}
scratch=$(mktemp -d "$work/scratch.XXXXXX")
one_line 2 "unknown option --bogus .*--help" --bogus --root "$scratch"
one_line 2 "exclude each other" --user --system --root "$scratch"
one_line 2 "--binary needs a path" --root "$scratch" --binary
one_line 1 "no such file; build one with cargo build --release" --root "$scratch" --binary "$work/missing/agm"
one_line 1 "does not run as agm" --root "$scratch" --binary /bin/true
one_line 1 "no such directory; create it first" --root "$work/no-such-root" --binary "$agm_bin"
expect "failed runs wrote nothing into the root" test -z "$(ls -A "$scratch")"

echo "==> launchd plist"
expect "deploy/com.agm.gateway.plist parses, runs agm serve, restarts on failure" python3 - <<'EOF'
import plistlib
with open("deploy/com.agm.gateway.plist", "rb") as f:
    p = plistlib.load(f)
assert p["Label"] == "com.agm.gateway", p
assert p["ProgramArguments"][0].endswith("/agm") and p["ProgramArguments"][1:] == ["serve"], p
assert p["RunAtLoad"] is True and p["KeepAlive"] == {"SuccessfulExit": False}, p
EOF

echo "==> Dockerfile (no container engine here: checks of its own)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$agm_bin" demo --port "$port" >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 100); do
  if http_get "http://127.0.0.1:$port/healthz" >/dev/null; then break; fi
  sleep 0.1
done
if python3 deploy/check-dockerfile.py --healthcheck-port "$port" >"$work/docker.out" 2>&1; then
  ok "$(cat "$work/docker.out")"
else
  fail "Dockerfile: $(cat "$work/docker.out")"
fi
kill "$demo_pid" 2>/dev/null || true
wait "$demo_pid" 2>/dev/null || true
demo_pid=""
# The checks must see a broken Dockerfile.
for broken in 's/^USER agm:agm/USER root/' 's/^FROM debian:bookworm-slim/FROM debian:latest/' \
  's|^COPY \. \.|ADD https://example.com/agm.tar.gz /src|' '/^HEALTHCHECK/,/CMD/d' 's/^VOLUME .*/VOLUME ["\/data"]/'; do
  sed "$broken" deploy/Dockerfile >"$work/Dockerfile.broken"
  if python3 deploy/check-dockerfile.py --dockerfile "$work/Dockerfile.broken" >/dev/null 2>&1; then
    fail "the Dockerfile checks missed: sed '$broken'"
  else
    ok "the Dockerfile checks catch: sed '$broken'"
  fi
done

echo "==> compose file and nginx config of the cluster (checks of their own)"
if python3 deploy/check-compose.py >"$work/compose.out" 2>&1; then
  ok "$(cat "$work/compose.out")"
else
  fail "compose: $(cat "$work/compose.out")"
fi
# The checks must see a broken cluster: a shared data dir, a secret in clear, a missing
# Redis, an unpinned image, a replica left out of nginx, buffered streams.
for broken in 's/agm-2-data:\/var\/lib\/agm/agm-1-data:\/var\/lib\/agm/' \
  's/^    AGM_SEAL_KEY: .*/    AGM_SEAL_KEY: c2VjcmV0/' '/AGM_CLUSTER__REDIS_URL/d' \
  's/image: redis:7.4.6-bookworm/image: redis:latest/'; do
  sed "$broken" deploy/compose.yaml >"$work/compose.broken.yaml"
  if python3 deploy/check-compose.py --compose "$work/compose.broken.yaml" >/dev/null 2>&1; then
    fail "the compose checks missed: sed '$broken'"
  else
    ok "the compose checks catch: sed '$broken'"
  fi
done
for broken in '/server agm-3:8045/d' 's/proxy_buffering off/proxy_buffering on/'; do
  sed "$broken" deploy/nginx.conf >"$work/nginx.broken.conf"
  if python3 deploy/check-compose.py --nginx "$work/nginx.broken.conf" >/dev/null 2>&1; then
    fail "the nginx checks missed: sed '$broken'"
  else
    ok "the nginx checks catch: sed '$broken'"
  fi
done

echo "==> operator docs: commands, flags, metrics and links are real"
if python3 deploy/check-docs.py "$agm_bin" >"$work/docs.out" 2>&1; then
  ok "$(tail -1 "$work/docs.out")"
else
  fail "docs: $(cat "$work/docs.out")"
fi

# The check must see made-up names: each line below is one it has to report.
cat >"$work/made-up.md" <<'EOF'
```sh
agm accounts frobnicate
agm doctor --fix
sudo -u agm /usr/local/bin/agm --config /etc/agm/config.toml keys rotate
```
Watch `agm_made_up_total` and alert `AgmMadeUp`; set `[server] made_up = 1` or
AGM_ROUTING__MADE_UP=1; see [a page](no-such-page.md) and [a part](setup.md#no-such-part).
EOF
python3 deploy/check-docs.py "$agm_bin" "$work/made-up.md" >"$work/made-up.out" 2>&1 || true
reported=$(grep -c '^docs/operations/made-up.md: ' "$work/made-up.out" || true)
if [ "$reported" = 9 ]; then
  ok "the docs check reports each of 9 made-up commands, flags, metrics, alerts, keys and links"
else
  fail "the docs check reported $reported of 9 made-up names: $(cat "$work/made-up.out")"
fi

# The alert rules the runbooks suggest, as one rule file.
python3 - "$work/suggested-rules.yml" <<'EOF'
import pathlib, re, sys
rules = ["groups:", "  - name: agm-runbooks", "    rules:"]
for page in sorted(pathlib.Path("docs/operations").glob("*.md")):
    for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S):
        rules += ["      " + line for line in block.splitlines()]
pathlib.Path(sys.argv[1]).write_text("\n".join(rules) + "\n")
EOF
if command -v promtool >/dev/null; then
  expect "promtool check rules: the alert rules the runbooks suggest" \
    bash -c "promtool check rules '$work/suggested-rules.yml' >/dev/null"
else
  skip "promtool is not installed: the suggested alert rules are not parsed (Debian: prometheus)"
fi

echo "==> shellcheck"
if command -v shellcheck >/dev/null; then
  expect "shellcheck deploy/install.sh deploy/test.sh" shellcheck deploy/install.sh deploy/test.sh
else
  skip "shellcheck is not installed (apt-get install shellcheck)"
fi

expect "the real /etc/passwd, /etc/group and /etc/systemd/system are untouched" test "$(host_state)" = "$host_before"

echo
if [ "$skipped" = 0 ]; then
  echo "deploy: $passed passed, $failed failed"
else
  echo "deploy: $passed passed, $failed failed, $skipped skipped"
fi
[ "$failed" = 0 ]
