#!/usr/bin/env bash
# Debian packages for the browser and DICOM-validator tests: chromium and dicom3tools.
# Installs only what is missing (with sudo when not root); the tests skip without them unless
# RNCLASSIFIER_REQUIRE_BROWSER / RNCLASSIFIER_REQUIRE_DCIODVFY are set, as `.ci/run` does.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v dciodvfy > /dev/null || missing+=(dicom3tools)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null 2>&1 || {
  $SUDO apt-get update > /dev/null
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null
}
echo "installed: ${missing[*]}" >&2
