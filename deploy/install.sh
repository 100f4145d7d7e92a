#!/usr/bin/env bash
# Installs agm as a service: the binary, a config, the data dir and a systemd unit.
#
#   sudo deploy/install.sh                  system-wide (the default as root): user agm,
#                                           /usr/local/bin/agm, /etc/agm, /var/lib/agm,
#                                           /etc/systemd/system/agm.service
#   deploy/install.sh --user                for you: ~/.local/bin/agm, ~/.config/agm,
#                                           ~/.local/share/agm, a systemd user unit
#
# Options:
#   --binary PATH    install this agm binary (a release download, or one you built);
#                    without it, `cargo build --release --locked --bin agm` builds one
#                    from this repository
#   --user           install for the current user (the default when not root)
#   --system         install system-wide (the default as root)
#   --root DIR       install under DIR, as DESTDIR does (a staging root or an image);
#                    implies --no-systemctl. The system user is created only when
#                    DIR/etc/passwd exists (useradd --prefix DIR)
#   --no-systemctl   do not run systemctl (daemon-reload)
#   --dry-run        say what would change, change nothing
#   -h, --help       this text
#
# Running it twice changes nothing: each item is reported as created, updated or
# unchanged, and an existing config is never overwritten. A new binary or unit is
# installed over the old one. Every failure is one line that says what to do.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
readonly SCRIPT_DIR REPO_DIR
readonly SERVICE_USER=agm

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

usage_error() {
  printf 'install.sh: error: %s (see deploy/install.sh --help)\n' "$*" >&2
  exit 2
}

mode=""
binary=""
root=""
systemctl_ok=1
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --user | --system)
      [ -z "$mode" ] || [ "$mode" = "${1#--}" ] || usage_error "--user and --system exclude each other"
      mode=${1#--}
      ;;
    --binary)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "--binary needs a path to an agm binary"; fi
      binary=$2
      shift
      ;;
    --binary=*) binary=${1#--binary=} ;;
    --root)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "--root needs a directory"; fi
      root=$2
      shift
      ;;
    --root=*) root=${1#--root=} ;;
    --no-systemctl) systemctl_ok=0 ;;
    --dry-run) dry_run=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) usage_error "unknown option $1" ;;
  esac
  shift
done

[ "$(uname -s)" = Linux ] ||
  die "this script installs systemd units, for Linux; on macOS use deploy/com.agm.gateway.plist as docs/operations/setup.md says"

is_root=0
[ "$(id -u)" = 0 ] && is_root=1
if [ -z "$mode" ]; then
  if [ "$is_root" = 1 ]; then mode=system; else mode=user; fi
fi
if [ -n "$root" ]; then
  [ -d "$root" ] || die "--root $root: no such directory; create it first (mkdir -p $root)"
  root=$(cd "$root" && pwd)
  [ "$root" != / ] || root=""
  systemctl_ok=0
fi
if [ "$mode" = system ] && [ "$is_root" = 0 ] && [ -z "$root" ]; then
  die "a system-wide install needs root: run it with sudo, or install for yourself with --user"
fi

# Target paths, as the installed system sees them; $root is prefixed when writing.
if [ "$mode" = system ]; then
  bin_path=/usr/local/bin/agm
  config_dir=/etc/agm
  config_path=/etc/agm/config.toml
  data_dir=/var/lib/agm
  unit_src="$SCRIPT_DIR/agm.service"
  unit_path=/etc/systemd/system/agm.service
  agm_cmd="sudo -u $SERVICE_USER $bin_path --config $config_path"
  serve_cmd="$agm_cmd serve"
else
  [ -n "${HOME:-}" ] || die "HOME is not set: set it to your home directory, or install system-wide with sudo"
  bin_path=$HOME/.local/bin/agm
  config_dir=$HOME/.config/agm
  config_path=$config_dir/config.toml
  data_dir=$HOME/.local/share/agm
  unit_src="$SCRIPT_DIR/agm-user.service"
  unit_path=$HOME/.config/systemd/user/agm.service
  agm_cmd=agm
  serve_cmd="$bin_path serve"
fi
[ -f "$unit_src" ] || die "$unit_src is missing: run install.sh from a complete agm checkout or release archive"

changed=0
say() { printf '  %-9s %s\n' "$1" "$2"; }
# Reports an item: created/updated count as changes (or would, in a dry run).
report() {
  case "$1" in
    created | updated)
      changed=$((changed + 1))
      if [ "$dry_run" = 1 ]; then say "would be" "$2 ($1)"; else say "$1" "$2"; fi
      ;;
    *) say "$1" "$2" ;;
  esac
}

# "uid:gid" of a user in the target's passwd file; empty when it has none.
target_owner() {
  local passwd="$root/etc/passwd"
  [ -f "$passwd" ] || return 0
  awk -F: -v u="$1" '$1 == u { print $3 ":" $4; exit }' "$passwd"
}

# The owner a file should have ("uid:gid"); empty: leave it as created.
owner_for() {
  if [ "$is_root" = 0 ] || [ "$mode" = user ]; then
    return 0
  fi
  case "$1" in
    root) echo 0:0 ;;
    root:agm) local o; o=$(target_owner "$SERVICE_USER"); [ -z "$o" ] || echo "0:${o#*:}" ;;
    agm) target_owner "$SERVICE_USER" ;;
  esac
}

# ensure_dir PATH MODE OWNER: creates the directory, or fixes its mode and owner.
ensure_dir() {
  local dir="$root$1" want_mode=$2 owner
  owner=$(owner_for "$3")
  if [ ! -d "$dir" ]; then
    if [ "$dry_run" = 0 ]; then
      mkdir -p "$dir" || die "cannot create $dir: check the permissions of its parent"
      chmod "$want_mode" "$dir"
      [ -z "$owner" ] || chown "$owner" "$dir"
    fi
    report created "$1/ (mode $want_mode)"
    return
  fi
  local have
  have=$(stat -c '%a %u:%g' "$dir")
  if [ "${have%% *}" != "${want_mode#0}" ] || { [ -n "$owner" ] && [ "${have#* }" != "$owner" ]; }; then
    if [ "$dry_run" = 0 ]; then
      chmod "$want_mode" "$dir"
      [ -z "$owner" ] || chown "$owner" "$dir"
    fi
    report updated "$1/ (mode $want_mode, was ${have%% *})"
  else
    report unchanged "$1/"
  fi
}

# Makes a parent directory exist without touching an existing one's mode.
ensure_parent() {
  local dir
  dir=$(dirname "$root$1")
  [ -d "$dir" ] || [ "$dry_run" = 1 ] || mkdir -p "$dir" || die "cannot create $dir: check the permissions of its parent"
}

# install_file SRC PATH MODE OWNER: copies SRC unless PATH already has the same bytes,
# mode and owner.
install_file() {
  local src=$1 dest="$root$2" want_mode=$3 owner what
  owner=$(owner_for "$4")
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    local have
    have=$(stat -c '%a %u:%g' "$dest")
    if [ "${have%% *}" = "${want_mode#0}" ] && { [ -z "$owner" ] || [ "${have#* }" = "$owner" ]; }; then
      report unchanged "$2"
      return 1
    fi
    what=updated
  elif [ -e "$dest" ]; then
    what=updated
  else
    what=created
  fi
  if [ "$dry_run" = 0 ]; then
    ensure_parent "$2"
    local tmp
    tmp=$(mktemp "$dest.XXXXXX") || die "cannot write next to $dest: check the permissions of $(dirname "$dest")"
    if ! { cp "$src" "$tmp" && chmod "$want_mode" "$tmp"; }; then
      rm -f "$tmp"
      die "cannot write $dest: check the free space and permissions of $(dirname "$dest")"
    fi
    if [ -n "$owner" ]; then chown "$owner" "$tmp"; fi
    mv -f "$tmp" "$dest" || { rm -f "$tmp"; die "cannot replace $dest: is the file busy or read-only?"; }
  fi
  report "$what" "$2"
  return 0
}

tmp_dir=$(mktemp -d)
trap 'rm -rf "$tmp_dir"' EXIT

# 1. The binary: given, or built from this repository.
if [ -z "$binary" ]; then
  [ -f "$REPO_DIR/Cargo.toml" ] ||
    die "no --binary given and $REPO_DIR is not an agm source tree: pass --binary PATH to a downloaded agm binary"
  command -v cargo >/dev/null ||
    die "no --binary given and cargo is not installed: install Rust 1.95+ (https://rustup.rs), or pass --binary PATH (as root, build first as your user and pass --binary target/release/agm)"
  echo "Building agm with cargo build --release (the first build takes several minutes)..."
  (cd "$REPO_DIR" && cargo build --release --locked --bin agm) ||
    die "cargo build failed (see above): fix the build, or pass --binary PATH to a release binary"
  target_dir=${CARGO_TARGET_DIR:-$REPO_DIR/target}
  case "$target_dir" in /*) ;; *) target_dir="$REPO_DIR/$target_dir" ;; esac
  binary="$target_dir/release/agm"
fi
[ -f "$binary" ] || die "--binary $binary: no such file; build one with cargo build --release (target/release/agm) or give the path of a downloaded agm"
[ -x "$binary" ] || die "--binary $binary is not executable: chmod +x $binary, or give another path"
version=$("$binary" --version 2>/dev/null) || version=""
case "$version" in
  agm\ *) ;;
  *) die "--binary $binary does not run as agm (agm --version failed): give the agm binary built for this machine" ;;
esac

if [ "$mode" = system ]; then where=system-wide; else where="for $(id -un)"; fi
echo "Installing $version $where${root:+, under $root}:"
[ "$dry_run" = 0 ] || echo "  (dry run: nothing is changed)"

# 2. The service user (system-wide only).
if [ "$mode" = system ]; then
  if [ -n "$(target_owner "$SERVICE_USER")" ] || { [ -z "$root" ] && id "$SERVICE_USER" >/dev/null 2>&1; }; then
    report unchanged "user $SERVICE_USER"
  elif [ -n "$root" ] && [ ! -f "$root/etc/passwd" ]; then
    report skipped "user $SERVICE_USER: $root/etc/passwd does not exist; create it on the target system (useradd --system --user-group --home-dir $data_dir --shell /usr/sbin/nologin $SERVICE_USER)"
  elif [ "$is_root" = 0 ]; then
    report skipped "user $SERVICE_USER: not root; create it as root (useradd --system --user-group --home-dir $data_dir --shell /usr/sbin/nologin $SERVICE_USER)"
  else
    command -v useradd >/dev/null ||
      die "useradd is not installed: create a system user $SERVICE_USER (group $SERVICE_USER, home $data_dir) yourself, then run this again"
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || [ ! -x /sbin/nologin ] || nologin=/sbin/nologin
    # A group agm left behind (by an earlier userdel, say) is reused.
    group_opt=--user-group
    if awk -F: -v g="$SERVICE_USER" '$1 == g { found = 1 } END { exit !found }' "$root/etc/group" 2>/dev/null; then
      group_opt="--gid=$SERVICE_USER"
    fi
    if [ "$dry_run" = 0 ]; then
      useradd ${root:+--prefix "$root"} --system "$group_opt" --home-dir "$data_dir" \
        --no-create-home --shell "$nologin" --comment "agm gateway" "$SERVICE_USER" ||
        die "useradd $SERVICE_USER failed (see above): create the user yourself, then run this again"
    fi
    report created "user $SERVICE_USER (system user, group $SERVICE_USER, home $data_dir, no login)"
  fi
fi

# 3. Directories, with their modes.
if [ "$mode" = system ]; then
  ensure_dir "$config_dir" 0750 root:agm
  ensure_dir "$data_dir" 0700 agm
else
  ensure_dir "$config_dir" 0700 ""
  ensure_dir "$data_dir" 0700 ""
fi

# 4. The binary.
binary_changed=0
if install_file "$binary" "$bin_path" 0755 root; then binary_changed=1; fi

# 5. The config: written once, never overwritten.
if [ -e "$root$config_path" ]; then
  report unchanged "$config_path (kept as it is: an existing config is never overwritten)"
  shown=""
  if [ "$mode" = system ] && [ -r "$root$config_path" ]; then
    shown=$(env -u AGM_DATA_DIR "$binary" --config "$root$config_path" config show 2>/dev/null) || true
  fi
  if [ "$mode" = system ] && ! grep -qx "data_dir = \"$data_dir\"" <<<"$shown"; then
    say warning "$config_path does not set [storage] data_dir = \"$data_dir\", the only dir the unit may write: add it"
  fi
else
  "$binary" --config "$tmp_dir/config.toml" config init >/dev/null ||
    die "agm config init failed: check that $binary is a complete agm build"
  if [ "$mode" = system ]; then
    # The service and the CLI (sudo -u agm agm --config ...) must find the same data
    # dir; a system user has no desktop session, so the key lives in secret.key.
    sed -i \
      -e "s|^data_dir = \"\" *#.*|data_dir = \"$data_dir\"   # set by deploy/install.sh; keep ReadWritePaths= in the unit equal|" \
      -e 's|^key_store = "auto" *#.*|key_store = "file"          # set by deploy/install.sh: a system service has no OS keychain; the key is secret.key in the data dir|' \
      "$tmp_dir/config.toml"
    if ! grep -q "^data_dir = \"$data_dir\"" "$tmp_dir/config.toml" ||
      ! grep -q '^key_store = "file"' "$tmp_dir/config.toml"; then
      die "the default config has changed shape (no data_dir/key_store line to set): update deploy/install.sh"
    fi
  fi
  "$binary" --config "$tmp_dir/config.toml" config show >/dev/null ||
    die "the config agm wrote does not load (see above): report this as a bug"
  if [ "$mode" = system ]; then
    install_file "$tmp_dir/config.toml" "$config_path" 0640 root:agm || true
  else
    install_file "$tmp_dir/config.toml" "$config_path" 0600 "" || true
  fi
fi

# 6. The systemd unit.
unit_changed=0
if install_file "$unit_src" "$unit_path" 0644 root; then unit_changed=1; fi

# 7. systemd itself.
if [ "$mode" = system ]; then systemctl_cmd=(systemctl); else systemctl_cmd=(systemctl --user); fi
if [ "$systemctl_ok" = 0 ]; then
  report skipped "systemctl (--no-systemctl${root:+ / --root})"
elif ! command -v systemctl >/dev/null; then
  report skipped "systemctl: not installed; start agm your own way: $serve_cmd"
elif [ "$unit_changed" = 1 ]; then
  if [ "$dry_run" = 0 ]; then
    "${systemctl_cmd[@]}" daemon-reload ||
      die "${systemctl_cmd[*]} daemon-reload failed: is systemd running here? Re-run with --no-systemctl to skip it"
  fi
  report updated "systemd units (${systemctl_cmd[*]} daemon-reload)"
else
  report unchanged "systemd units"
fi

echo
if [ "$changed" = 0 ]; then
  echo "Nothing changed: everything was already installed."
elif [ "$dry_run" = 1 ]; then
  echo "Dry run: $changed item(s) would change. Run again without --dry-run to install."
else
  echo "Done: $changed item(s) changed."
fi
if [ "$dry_run" = 0 ] && [ "$binary_changed" = 1 ] && [ "$systemctl_ok" = 1 ] &&
  command -v systemctl >/dev/null && "${systemctl_cmd[@]}" --quiet is-active agm 2>/dev/null; then
  echo "agm is running the old binary: restart it with ${systemctl_cmd[*]} restart agm"
fi

echo
echo "Next steps (docs/operations/setup.md explains each):"
if [ "$mode" = system ]; then
  cat <<EOF
  1. Add a Google account you can afford to lose (Google's terms forbid some uses; accounts
     have been suspended). On a server, paste the answer from any browser:
       $agm_cmd accounts add --no-browser
  2. Check the set-up:
       $agm_cmd doctor
  3. Start it now and at every boot, then check it:
       systemctl enable --now agm
       curl -s http://127.0.0.1:8045/readyz
  Run every agm command this way (as user $SERVICE_USER, with --config), or it opens another data dir.
  Serving other machines: create a client key first ($agm_cmd keys create --name NAME),
  then set [server] bind in $config_path and restart. Logs: journalctl -u agm -f
EOF
else
  case ":$PATH:" in
    *":$HOME/.local/bin:"*) ;;
    *) echo "  0. $HOME/.local/bin is not on your PATH: add it (export PATH=\"\$HOME/.local/bin:\$PATH\")" ;;
  esac
  cat <<EOF
  1. Add a Google account you can afford to lose (Google's terms forbid some uses; accounts
     have been suspended):
       agm accounts add            (add --no-browser over SSH)
  2. Check the set-up:
       agm doctor
  3. Start it now and at every login, then check it:
       systemctl --user enable --now agm
       curl -s http://127.0.0.1:8045/readyz
  To keep it running after you log out: loginctl enable-linger "\$USER". Logs: journalctl --user -u agm -f
EOF
fi
