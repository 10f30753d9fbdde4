#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need, skipping
# what is already there. Debian/Ubuntu only (apt-get); needs root or sudo.
set -euo pipefail

# --unit: only what `make test-unit` needs (libgit2 and git).
unit=false
[ "${1:-}" = "--unit" ] && unit=true
packages=(libgit2-dev libyaml-dev zlib1g-dev pkg-config git python3 hyperfine time prometheus prometheus-alertmanager curl openssh-client openssh-server nginx fcgiwrap openssl chromium chromium-driver python3-pip haproxy docker-registry skopeo python3-cryptography podman runc busybox-static iproute2)
$unit && packages=(libgit2-dev libyaml-dev zlib1g-dev pkg-config git python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Selenium (from PyPI) drives Debian's chromium for the HTML report's test.
if ! $unit && ! python3 -c "import selenium" >/dev/null 2>&1; then
  echo "installing: selenium (PyPI)"
  python3 -m pip install --quiet selenium 2>/dev/null || python3 -m pip install --quiet --break-system-packages selenium
fi
# Schemathesis (from PyPI) checks that rewind serve and its OpenAPI document agree.
if ! $unit && ! command -v st >/dev/null 2>&1; then
  echo "installing: schemathesis (PyPI)"
  python3 -m pip install --quiet schemathesis 2>/dev/null || python3 -m pip install --quiet --break-system-packages schemathesis
fi
# jsonschema (from PyPI) checks the PagerDuty events against the Events API v2 schema (fixtures/pagerduty/).
if ! $unit && ! python3 -c "import jsonschema" >/dev/null 2>&1; then
  echo "installing: jsonschema (PyPI)"
  python3 -m pip install --quiet jsonschema 2>/dev/null || python3 -m pip install --quiet --break-system-packages jsonschema
fi
# aiosmtpd (from PyPI) is the SMTP server (STARTTLS, AUTH) of the email notification tests.
if ! $unit && ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  echo "installing: aiosmtpd (PyPI)"
  python3 -m pip install --quiet aiosmtpd 2>/dev/null || python3 -m pip install --quiet --break-system-packages aiosmtpd
fi
# oidc-provider-mock (from PyPI) is the OpenID provider of the single sign-on tests.
if ! $unit && ! python3 -c "import oidc_provider_mock" >/dev/null 2>&1; then
  echo "installing: oidc-provider-mock (PyPI)"
  python3 -m pip install --quiet oidc-provider-mock 2>/dev/null || python3 -m pip install --quiet --break-system-packages oidc-provider-mock
fi
if ! command -v swift >/dev/null 2>&1; then
  for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [ -x "$candidate/swift" ] && { echo "swift is at $candidate; add it to PATH"; exit 1; }
  done
  echo "Swift 6 is required (https://www.swift.org/install/linux/); install it and rerun." >&2
  exit 1
fi
