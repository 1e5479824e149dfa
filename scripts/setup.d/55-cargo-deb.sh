# cargo-deb builds the suite's Debian package (scripts/package), which
# scripts/check-package installs, verifies and removes on every run of
# scripts/test. Installed from crates.io when missing (about 2 min here);
# pinned, so a new release cannot change the package under CI.
# dpkg-shlibdeps (dpkg-dev) gives the package its exact shared-library depends.
set -euo pipefail
version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qF "$version"; then
  cargo install cargo-deb --version "$version" --locked --quiet
fi
if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev
fi
