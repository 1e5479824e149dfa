# Base tools the tests use: a C compiler (aws-lc-sys, ring), python3 (syntax
# probe, demo agents), mkfifo (coreutils), systemd-analyze (the shipped units
# are verified), curl and kill (the e2e tests), /usr/bin/time (nexus-bench
# measures CPU and peak RSS of every child with it).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mkfifo >/dev/null 2>&1 || need+=(coreutils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # unit files are verified
command -v curl >/dev/null 2>&1 || need+=(curl)                  # e2e tests read the pool's HTTP surface
[[ -x /bin/kill || -x /usr/bin/kill ]] || need+=(procps)         # e2e tests signal processes
[[ -x /usr/bin/time ]] || need+=(time)                           # nexus-bench: CPU and peak RSS per child
command -v script >/dev/null 2>&1 || need+=(bsdutils)               # e2e demo tests: Ctrl-C through a pseudo-terminal
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
