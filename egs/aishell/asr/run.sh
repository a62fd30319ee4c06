#!/usr/bin/env bash
# Conformer ASR (--model paraformer | aed | ctc) on AISHELL-1 (openslr.org/33, 178 h of read Mandarin), character
# tokens. Downloads data_aishell.tgz (15 GB) into --corpus-dir unless an extracted data_aishell/ is already there.
#   egs/aishell/asr/run.sh --corpus-dir /data/aishell --device cuda --nproc 8
#   egs/aishell/asr/run.sh --corpus-dir /data/aishell --model aed --device cuda --nproc 8
#   egs/aishell/asr/run.sh --corpus-dir /data/aishell --stage 0 --stop-stage 0    # manifests only
# Other options go to recipes/asr.sh (--stage, --stop-stage, --train-args "key=value ...", --mwer-steps, ...).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
corpus_dir=$here/downloads; model=paraformer
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$(realpath -m "$2"); shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$model" in paraformer|aed|ctc) ;; *) echo "unknown --model $model (paraformer, aed, ctc)" >&2; exit 1 ;; esac
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export data=${data:-$here/data}
export exp=${exp:-$here/exp/$model}
export config=${config:-$root/recipes/conf/asr/${model}_aishell.yaml}
export train_set=${train_set:-train}
export dev_set=${dev_set:-dev}
export test_sets=${test_sets:-"dev test"}
# A data_aishell/ extracted by hand is used as it is; one left by our own (possibly interrupted) download, with its
# .complete marker or its archive next to it, goes through --download, which resumes or does nothing.
download=--download
if [ -d "$corpus_dir/data_aishell" ] && [ ! -f "$corpus_dir/data_aishell/.complete" ] \
  && [ ! -f "$corpus_dir/data_aishell.tgz" ]; then
  download=""
fi
# recipes/asr.sh evals it: the paths are quoted (${x@Q}) and $python is its interpreter
export prepare_cmd="\$python -m speechseq.bin.prepare aishell --root ${corpus_dir@Q} --out ${data@Q} $download"
exec "$root/recipes/asr.sh" "${args[@]}"
