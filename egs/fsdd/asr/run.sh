#!/usr/bin/env bash
# Conformer ASR (--model ctc | paraformer | aed) on the Free Spoken Digit Dataset (real speakers, 8 kHz upsampled to 16 kHz), speaker-disjoint split.
#   egs/fsdd/asr/run.sh --data-dir ../shared/data/fsdd     # a local copy
#   egs/fsdd/asr/run.sh --download downloads/fsdd          # fetch the public release (needs internet)
#   egs/fsdd/asr/run.sh --no-synth-digits                  # FSDD speakers only (default: training also gets the ten
#                                                          # digits spoken by every installed TTS voice, at 8 kHz)
#   egs/fsdd/asr/run.sh --synth-variants 4                 # and by 4 random speed/pitch variants of each voice
#   egs/fsdd/asr/run.sh --test-speakers theo               # another held-out speaker (default: the last, yweweler);
#                                                          # egs/fsdd/asr/cv.sh runs every speaker in turn
#   egs/fsdd/asr/run.sh --seeds 1                          # one model (default: 3 seeds, decoded alone and as an
#                                                          # ensemble: pooled held-out WER 16.25 -> 14.90% with the LM)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
data_dir=""; download=""; model=ctc; synth_digits=1; synth_variants=0; test_speakers=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir=$(realpath "$2"); shift 2 ;;
    --model) model=$2; shift 2 ;;
    --download) download=$(realpath -m "$2"); shift 2 ;;
    --no-synth-digits) synth_digits=0; shift ;;
    --synth-variants) synth_variants=$2; shift 2 ;;
    --test-speakers) test_speakers=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$data_dir" ] && [ -z "$download" ]; then
  [ -d "$root/../shared/data/fsdd" ] && data_dir=$(realpath "$root/../shared/data/fsdd") || download=$here/downloads
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# another held-out speaker gets its own default folders (the .done markers would otherwise keep the old split)
held_out=""; [ -n "$test_speakers" ] && held_out="_test_${test_speakers//,/_}"
export data=${data:-$here/data$held_out}
case "$model" in ctc|paraformer|aed) ;; *) echo "unknown --model $model (ctc, paraformer, aed)" >&2; exit 1 ;; esac
export exp=${exp:-$here/exp/$model$held_out}
export config=${config:-$root/recipes/conf/asr/${model}_fsdd.yaml}
export seeds=${seeds:-3}
# recipes/asr.sh evals it: the paths are quoted (${x@Q}) and $python is its interpreter
src="--data-dir ${data_dir@Q}"; [ -n "$download" ] && src="--download ${download@Q}"
[ "$synth_digits" = 1 ] && src="$src --synth-digits ${data@Q}/synth_digits --synth-variants $synth_variants"
[ -n "$test_speakers" ] && src="$src --test-speakers ${test_speakers@Q}"
export prepare_cmd="\$python -m speechseq.bin.prepare fsdd --out ${data@Q} $src"
exec "$root/recipes/asr.sh" "${args[@]}"
