#!/usr/bin/env bash
# Conformer ASR (CTC, Paraformer or AED) on speechseq's synthesized multi-voice English corpus (espeak-ng, flite,
# festival voices); dev and test are spoken by voices never heard in training.
#   egs/synth_en/asr/run.sh --scale tiny          # the Quickstart: ~15 minutes on 2 CPU cores
#   egs/synth_en/asr/run.sh --scale tiny --model paraformer   # or aed (config recipes/conf/asr/<model>_synth_<scale>)
#   egs/synth_en/asr/run.sh --scale small         # hours of audio; the WER <= 5% target (with speaker-level VTLN)
#   egs/synth_en/asr/run.sh --scale tiny --text ../shared/data/text/sentences.txt   # sentences from a file
# Other options are passed to recipes/asr.sh (--stage, --stop-stage, --device, --nproc, --train-args ...).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
scale=tiny; text=""; nj=2; model=ctc
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$scale" in tiny|small|full) ;; *) echo "unknown --scale $scale (tiny, small, full)" >&2; exit 1 ;; esac
case "$model" in ctc|paraformer|aed) ;; *) echo "unknown --model $model (ctc, paraformer, aed)" >&2; exit 1 ;; esac
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export data=${data:-$here/data/$scale}
export exp=${exp:-$here/exp/${model}_$scale}
export config=${config:-$root/recipes/conf/asr/${model}_synth_$scale.yaml}
# test-time VTLN per held-out voice (speaker-level, recipes/asr.sh --warps): every decode method gets a *_vtln row
# too; --warps "" switches it off
export warps=${warps-0.8,0.85,0.9,0.95,1,1.05,1.1,1.15,1.2}
text_opt=""; [ -n "$text" ] && text_opt="--text $(realpath "$text")" && text_opt=${text_opt@Q}
# recipes/asr.sh evals it: the paths are quoted (${x@Q}) and $python is its interpreter
export prepare_cmd="\$python -m speechseq.bin.prepare synth_en --out ${data@Q} --scale $scale --num-jobs $nj $text_opt"
exec "$root/recipes/asr.sh" "${args[@]}"
