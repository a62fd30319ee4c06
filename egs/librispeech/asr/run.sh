#!/usr/bin/env bash
# Conformer ASR (--model ctc | paraformer | aed) on LibriSpeech (960 h or train-clean-100). Downloads from OpenSLR into --corpus-dir unless the
# standard LibriSpeech/ layout is already there.
#   egs/librispeech/asr/run.sh --corpus-dir /data/librispeech --size 30m --device cuda --nproc 8
#   egs/librispeech/asr/run.sh --subsets "train-clean-100 dev-clean test-clean test-other" --size 30m
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
corpus_dir=$here/downloads; size=30m; model=ctc
subsets="train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$(realpath -m "$2"); shift 2 ;;
    --size) size=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --subsets) subsets=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$size" in 30m|100m) ;; *) echo "unknown --size $size (30m, 100m)" >&2; exit 1 ;; esac
case "$model" in ctc|paraformer|aed) ;; *) echo "unknown --model $model (ctc, paraformer, aed)" >&2; exit 1 ;; esac
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export data=${data:-$here/data}
export exp=${exp:-$here/exp/${model}_$size}
export config=${config:-$root/recipes/conf/asr/${model}_librispeech_$size.yaml}
train_parts=$(for s in $subsets; do case $s in train-*) echo -n "$s ";; esac; done)
export train_set=${train_set:-train}
export dev_set=${dev_set:-dev-clean}
export test_sets=${test_sets:-"$(for s in $subsets; do case $s in test-*|dev-*) echo -n "$s ";; esac; done)"}
# A LibriSpeech/ tree extracted by hand (every subset there, none with our .complete marker or archive) is used as it
# is; otherwise --download fetches what is missing, resumes, or does nothing.
download=""
for s in $subsets; do
  if [ ! -d "$corpus_dir/LibriSpeech/$s" ] || [ -f "$corpus_dir/LibriSpeech/$s/.complete" ] \
    || [ -f "$corpus_dir/$s.tar.gz" ]; then download=--download; fi
done
# recipes/asr.sh evals it: the paths are quoted (${x@Q}) and $python is its interpreter
export prepare_cmd="\$python -m speechseq.bin.prepare librispeech --root ${corpus_dir@Q} --out ${data@Q} $download \
  --subsets $(echo $subsets | tr ' ' ',') && \$python -m speechseq.bin.prepare merge --out ${data@Q}/train.jsonl \
  $(for s in $train_parts; do echo -n "${data@Q}/$s.jsonl "; done)"
exec "$root/recipes/asr.sh" "${args[@]}"
