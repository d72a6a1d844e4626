#!/usr/bin/env bash
# Sets loco-tf up on this machine: the Debian packages that render audio (when run as root) and
# the Python package with everything it needs, installed editable from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

# FluidR3 (the default kit and piano), MuseScore General and csound GM banks, and AVLinux's two
# recorded acoustic drum kits: several kits so a drum model can be trained on some and tested on
# one it never heard (TimGM6mb, inside the pretty_midi wheel). Then the recorded kits that the
# drum models' records train and test on and that tests read (Hydrogen's drumkits, among them
# the test kits ForzeeStereo, Millo_MultiLayered2 and GMRockKit) and the one-shot packs of LMMS
# and Sonic Pi: 190 MB more, 12 s to install here.
debian_packages=(fluidsynth fluid-soundfont-gm musescore-general-soundfont-small csound-soundfont
  avldrums.lv2-soundfont hydrogen-drumkits hydrogen-data lmms-common sonic-pi-samples)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! dpkg -s "${debian_packages[@]}" >/dev/null 2>&1; then
    echo "setup: installing ${debian_packages[*]} (audio rendering)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debian_packages[@]}" >/dev/null
  fi
elif ! command -v fluidsynth >/dev/null 2>&1; then
  echo "setup: fluidsynth is missing; install it with: sudo apt-get install ${debian_packages[*]}" >&2
  echo "setup: (without it, data rendering is unavailable; the library and its tests still work)" >&2
fi

echo "setup: installing loco-tf and its Python dependencies"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
