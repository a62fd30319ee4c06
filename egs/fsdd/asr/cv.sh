#!/usr/bin/env bash
# Leave-one-speaker-out cross-validation on FSDD: one run of run.sh per speaker, with that speaker held out as the
# test set and the others trained on, then one table of every fold plus WER pooled over the folds.
#   egs/fsdd/asr/cv.sh                                # CTC, the recipe defaults, every speaker of ../shared/data/fsdd
#   egs/fsdd/asr/cv.sh --data-dir DIR --synth-variants 4 --model paraformer    # run.sh options pass through
# Fold k uses data=$data_root/cv_<speaker> and exp=$exp_root/<model>_cv_<speaker> (data_root defaults to
# egs/fsdd/asr/data_cv, exp_root to egs/fsdd/asr/exp); finished stages of a fold are skipped (run.sh's .done
# markers), so to compare options give each setting its own data_root and exp_root. run.sh trains 3 seeds per fold by
# default (--seeds 1: one model, a third of the time); the table then pools the first model's rows and the
# ensemble's ("+ ensemble of 3") separately.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
data_dir=""; model=ctc
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir=$(realpath "$2"); shift 2 ;;
    --model) model=$2; args+=("$1" "$2"); shift 2 ;;
    --test-speakers|--exp|--data)
      echo "cv.sh sets $1 for every fold itself (data_root=DIR exp_root=DIR choose where folds go)" >&2; exit 1 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$data_dir" ]; then
  [ -d "$root/../shared/data/fsdd" ] || { echo "no ../shared/data/fsdd: give --data-dir (e.g. after run.sh --download DEST --stop-stage 0, DEST)" >&2; exit 1; }
  data_dir=$(realpath "$root/../shared/data/fsdd")
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python}
data_root=${data_root:-$here/data_cv}; exp_root=${exp_root:-$here/exp}
speakers=$($python -c 'import sys; from speechseq.data.corpora.fsdd import fsdd_speakers; print(" ".join(fsdd_speakers(sys.argv[1])))' "$data_dir")
summaries=()
shopt -s nullglob
for speaker in $speakers; do
  name=${speaker#fsdd_}
  echo "=== fold: test speaker $name"
  data=$data_root/cv_$name exp=$exp_root/${model}_cv_$name "$here/run.sh" --data-dir "$data_dir" --test-speakers "$name" "${args[@]}"
  fold=("$exp_root/${model}_cv_$name"/decode_test_*/summary.json)
  [ ${#fold[@]} -gt 0 ] || { echo "fold $name decoded nothing (no $exp_root/${model}_cv_$name/decode_test_*)" >&2; exit 1; }
  summaries+=("${fold[@]}")
  if [ -d "$exp_root/${model}_cv_$name/mwer" ]; then
    summaries+=("$exp_root/${model}_cv_$name"/mwer/decode_test_*/summary.json)
  fi
done
echo
$python -m speechseq.bin.score --pooled --table "${summaries[@]}"
