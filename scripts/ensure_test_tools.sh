#!/usr/bin/env bash
# Optional tools some tests use; best effort, never fails the build (the tests skip, with the
# reason, when a tool is missing):
#   Xvfb (Debian: xvfb): a virtual screen for the --display window test.
set -u
command -v Xvfb >/dev/null && exit 0
if command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = "0" ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n"; }
  if [ "$(id -u)" = "0" ] || [ -n "$sudo" ]; then
    echo "installing xvfb for the --display window test ..." >&2
    (timeout 180 $sudo apt-get install -y -qq xvfb >/dev/null 2>&1 \
      || { timeout 120 $sudo apt-get update -qq >/dev/null 2>&1 \
           && timeout 180 $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb >/dev/null 2>&1; }) \
      || echo "could not install xvfb: the --display window test will be skipped" >&2
  fi
fi
exit 0
