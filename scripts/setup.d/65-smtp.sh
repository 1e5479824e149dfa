# A real SMTP server for the email channel's tests: Debian's aiosmtpd
# (python3-aiosmtpd, started by nexus-testkit's smtp fixture on loopback
# with STARTTLS required) and the openssl CLI that makes its test CA and
# certificate. Idempotent: installs only what is missing. The fixture
# looks for the module under `python3` on PATH, then Debian's
# /usr/bin/python3 (a pyenv python3 does not see Debian's packages).
set -euo pipefail
need=()
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1 && ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  need+=(python3-aiosmtpd)
fi
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
