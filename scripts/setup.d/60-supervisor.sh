# supervisord (Debian's `supervisor`, 4.2): the peer nexus-bench's MTTR cases
# measure our pool against, in the same run. The bench runs its own
# supervisord on its own config; the packaged service is stopped and
# disabled so nothing else is supervised on this machine.
# Idempotent: installs only what is missing.
set -euo pipefail
if ! command -v supervisord >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq supervisor
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  systemctl disable --now supervisor >/dev/null 2>&1 || true
else
  service supervisor stop >/dev/null 2>&1 || true
fi
