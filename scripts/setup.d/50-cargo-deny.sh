# cargo-deny checks licences, banned crates (OpenSSL) and sources on every
# run of scripts/test. Installed from crates.io when missing (about 2.5 min).
set -euo pipefail
if ! command -v cargo-deny >/dev/null 2>&1; then
  cargo install cargo-deny --locked --quiet
fi
