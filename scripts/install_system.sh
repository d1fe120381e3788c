#!/usr/bin/env bash
# Debian packages the harness uses where it can: bubblewrap (the sandbox for generated code), Chromium (the
# headless browser that checks the HTML report in the tests) and PostgreSQL's server (the tests start a throwaway
# one for the shared store). Installed with apt-get when setup runs as root; elsewhere each is optional: without bubblewrap programs run with plain process isolation (every
# manifest says so), without Chromium the browser test is skipped (`make test` names the missing package).
set -u
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  for package in "${missing[@]}"; do  # one at a time: a package this system lacks must not block the other
    echo "installing $package (apt-get)"
    apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1; }
  done
fi
command -v bwrap >/dev/null 2>&1 \
  || echo "bubblewrap not available: generated code will run with process isolation only (apt-get install bubblewrap)" >&2
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || echo "chromium not available: the HTML report's browser test will be skipped (apt-get install chromium)" >&2
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || echo "PostgreSQL not available: the shared-store tests will be skipped (apt-get install postgresql)" >&2
exit 0
