# Base tools the tests use: a C compiler (aws-lc-sys, ring), python3 (syntax
# probe, mkfifo from coreutils), systemd-analyze (the shipped units are verified).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # unit files are verified
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
