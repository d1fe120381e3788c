#!/usr/bin/env bash
# Install bubblewrap (the sandbox for generated code) where we may; without it, programs run with plain
# process isolation and every run's manifest says so.
set -u
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing bubblewrap (apt-get)"
  apt-get install -y -q bubblewrap >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; }
fi
if command -v bwrap >/dev/null 2>&1; then
  echo "bubblewrap installed"
else
  echo "bubblewrap not available: generated code will run with process isolation only (see README, Sandbox)" >&2
fi
exit 0
