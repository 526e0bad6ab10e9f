#!/usr/bin/env bash
# opencv-python (with its GUI, for --display) needs the system's GL and GLib libraries on Linux.
# On a fresh Debian/Ubuntu machine they may be missing: install them when we can, else say how.
set -u
py="${1:-.venv/bin/python}"
if "$py" -c "import cv2" 2>/dev/null; then exit 0; fi
echo "opencv-python can't load (missing libGL.so.1 / libglib-2.0?); installing libgl1 libglib2.0-0 ..." >&2
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0) >&2
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0) >&2
fi
if ! "$py" -c "import cv2"; then
  echo "error: OpenCV still can't load. Install your distribution's GL and GLib runtime" \
       "(Debian/Ubuntu: apt-get install libgl1 libglib2.0-0; Fedora: dnf install mesa-libGL glib2)." >&2
  exit 1
fi
