#!/usr/bin/env bash
# The Debian packages the product needs, checked before `make run`, `make test` and CI.
#
#   scripts/system-deps.sh run|test|ci
#
# 1. Work out which commands are missing for the mode (run: git, bubblewrap, and
#    redis-server unless a Redis already answers; test: also chromium; ci: also
#    the PostgreSQL and Redis tools it starts services with).
# 2. Install their packages with apt when we may (root, or sudo without a
#    password), running `apt-get update` first.
# 3. Otherwise stop at once with the one command that installs them. On a
#    machine without apt (not Debian/Ubuntu) nothing can be installed: say so
#    and go on; the tests that need a missing package skip, and pytest's summary
#    names them in one line. SYSTEM_DEPS=skip turns the check off.
set -euo pipefail

mode=${1:-run}
case "$mode" in run | test | ci) ;; *) echo "usage: $0 run|test|ci" >&2; exit 2 ;; esac
[ "${SYSTEM_DEPS:-}" = skip ] && exit 0

# command -> Debian package
declare -A package_of=(
  [git]=git
  [bwrap]=bubblewrap
  [redis-server]=redis-server
  [chromium]=chromium
  [pg_isready]=postgresql-client
  [psql]=postgresql-client
  [pg_ctlcluster]=postgresql
  [redis-cli]=redis-tools
)

redis_answers() {
  local host=${1:-127.0.0.1} port=${2:-6379} reply
  exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ $reply == +PONG* ]]
}

wanted=(git bwrap)
if [ -z "${REDIS_URL:-}" ] && ! redis_answers; then wanted+=(redis-server); fi
if [ "$mode" != run ]; then wanted+=(chromium); fi
if [ "$mode" = ci ]; then wanted+=(pg_isready psql pg_ctlcluster redis-cli); fi

missing=()
for cmd in "${wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 && continue
  pkg=${package_of[$cmd]}
  [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

install_cmd="apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[deps] Not installed, and no apt-get here to install them: ${missing[*]}." >&2
  echo "[deps] Install them with your system's package manager; until then the tests that need them skip." >&2
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "[deps] Missing system packages: ${missing[*]}. Install them, then run make $mode again:" >&2
  echo "    sudo $install_cmd" >&2
  exit 1
fi

echo "[deps] Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
if ! "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; then
  echo "[deps] apt-get could not install ${missing[*]}; the tests that need them skip." >&2
  [ "$mode" = ci ] && exit 1
fi
exit 0
