# Real Redis and PostgreSQL servers for the probe tests (nexus-testkit starts
# them itself, on loopback, in a temp dir). Idempotent: installs only what is
# missing. Debian puts the PostgreSQL binaries in /usr/lib/postgresql/<v>/bin,
# which nexus-testkit searches; PATH is not changed.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
# initdb and postgres refuse to run as root: the tests use runuser (util-linux).
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Debian's packages may start system-wide servers on the default ports; the
# tests never use them (they pick free ports), so they are left alone.
