#!/usr/bin/env bash
# Installs the TTS engines and sox that the synthesized corpus (egs/synth_en) and the tests use, when missing.
# Debian/Ubuntu: apt-get (as root, or through sudo). Elsewhere: prints what to install and fails.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v flite >/dev/null || need+=(flite)
command -v text2wave >/dev/null || need+=(festival)
[ -d /usr/share/festival/voices/english/kal_diphone ] || need+=(festvox-kallpc16k)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || need+=(festvox-us-slt-hts)
command -v sox >/dev/null || need+=(sox)
command -v sndfile-info >/dev/null || [ -e /usr/lib/x86_64-linux-gnu/libsndfile.so.1 ] || need+=(libsndfile1)
if [ ${#need[@]} -eq 0 ]; then echo "system packages: all present"; exit 0; fi
echo "installing system packages: ${need[*]}"
if ! command -v apt-get >/dev/null; then
  echo "no apt-get: please install ${need[*]} with your package manager" >&2; exit 1
fi
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
