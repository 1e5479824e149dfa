# Headless Chromium (the status page is tested as a person sees it),
# promtool (from Debian's prometheus package: /metrics and alert rules are
# checked by the real tool) and Alertmanager (its webhook into the pool's
# Gitea incident engine is tested with the real one). Idempotent: installs
# only what is missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
