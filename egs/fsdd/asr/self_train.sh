#!/usr/bin/env bash
# Unsupervised adaptation to the held-out speaker by self-training, scored on utterances it never adapted on.
#   egs/fsdd/asr/self_train.sh                       # after run.sh (3 CTC seeds): exp/ctc and data/ of the recipe
#   exp=egs/fsdd/asr/exp/ctc_cv_theo data=egs/fsdd/asr/data_cv/cv_theo egs/fsdd/asr/self_train.sh   # a cv.sh fold
# The test speaker's utterances are split in two halves (prepare halves: each digit equally often in each). For
# each half H, with the other half O:
#   1. the labels: the fold's ensemble of all seeds with the LM transcribes H (decode --ensemble --lm), and every
#      seed alone (greedy) votes; H's utterances where at least --min-votes seeds (default: all) agree with the
#      ensemble become pseudo-labelled training data (speechseq pseudolabel; H's own transcripts are never read);
#   2. every seed is fine-tuned from its weights (train --init) on the training set plus those utterances, written
#      --repeat times (default 4) to weigh them against the ~1900 labelled ones, for --steps steps (default 500);
#   3. the adapted ensemble decodes O, greedy and with the LM.
# The two O decodes are then pooled: every test utterance is scored once, by models that never heard it, beside the
# unadapted ensemble's decode of the whole test set ($exp/self_train/RESULTS.md).
# Measured (egs/fsdd/asr/RESULTS.md, two folds): each seed alone gains 1-6 points on the hardest speaker, but the
# adapted seeds make the same mistakes, and their ensemble gains nothing (+ LM: +0.2 and +2.6 points). Not a default.
# Options (--name value): --seeds 3 --min-votes N --repeat 4 --steps 500 --lr 0.0005 --stage 0 --stop-stage 3
# Stages: 0 halves and the per-seed votes; 1 pseudo-labels; 2 fine-tuning; 3 decode and score. Output: $exp/self_train.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/recipes/lib.sh"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python}
exp=${exp:-$here/exp/ctc}; data=${data:-$here/data}
seeds=3; min_votes=""; repeat=4; steps=500; lr=0.0005; stage=0; stop_stage=3; force=false
lm_weight=0.6; lm_bonus=1.5
parse_options "$@"
check_stages
[ -n "$min_votes" ] || min_votes=$seeds
models=("$exp"); for ((k = 1; k < seeds; k++)); do models+=("$exp/seed$k"); done
for m in "${models[@]}"; do
  [ -f "$m/model.pt" ] || die "$m/model.pt: train the fold's $seeds seeds first (run.sh --seeds $seeds)"
done
[ -f "$data/test.jsonl" ] || die "$data/test.jsonl: prepare the fold first (run.sh)"
[ -f "$exp/lm.arpa" ] || die "$exp/lm.arpa: the recipe's stage 1 LM is needed"
out=$exp/self_train; done_dir=$out
stage_names=([0]="halves and votes" [1]="pseudo-labels" [2]="fine-tune" [3]="decode and score")
mkdir -p "$out"
ens_opts() { local d=$1 k; for ((k = 1; k < seeds; k++)); do printf -- '--ensemble\n%s\n' "$d/seed$k"; done; }
lm_opts=(--lm "$exp/lm.arpa" --lm-weight "$lm_weight" --lm-bonus "$lm_bonus")

if stage 0; then
  $python -m speechseq.bin.prepare halves --manifest "$data/test.jsonl" --out-a "$out/test_a.jsonl" \
    --out-b "$out/test_b.jsonl"
  mapfile -t ens < <(ens_opts "$exp")
  $python -m speechseq.bin.decode --model-dir "$exp" "${ens[@]}" --manifest "$data/test.jsonl" --method beam \
    "${lm_opts[@]}" --out "$out/label"
  $python -m speechseq.bin.decode --model-dir "$exp" "${ens[@]}" --manifest "$data/test.jsonl" --method greedy \
    --out "$out/before_greedy"
  for ((k = 0; k < seeds; k++)); do
    $python -m speechseq.bin.decode --model-dir "${models[$k]}" --manifest "$data/test.jsonl" --method greedy \
      --out "$out/vote$k"
  done
  mark_done 0
fi
if stage 1; then
  votes=(); for ((k = 0; k < seeds; k++)); do votes+=(--vote "$out/vote$k/hyp.jsonl"); done
  for h in a b; do
    $python -m speechseq.bin.pseudolabel --manifest "$out/test_$h.jsonl" --label "$out/label/hyp.jsonl" "${votes[@]}" \
      --min-votes "$min_votes" --base "$data/train.jsonl" --repeat "$repeat" --out "$out/train_$h.jsonl"
  done
  mark_done 1
fi
if stage 2; then
  for h in a b; do
    for ((k = 0; k < seeds; k++)); do
      dest=$out/adapt_$h; [ "$k" -gt 0 ] && dest=$out/adapt_$h/seed$k
      log "fine-tune ${models[$k]} on $out/train_$h.jsonl -> $dest"
      $python -m speechseq.bin.train --config "${models[$k]}/config.yaml" --exp "$dest" --init "${models[$k]}" \
        --train "$out/train_$h.jsonl" --dev "$data/dev.jsonl" train.max_steps="$steps" train.lr="$lr" \
        train.warmup_steps=30
    done
    cp "$exp/lm.arpa" "$out/adapt_$h/lm.arpa"
  done
  mark_done 2
fi
if stage 3; then
  summaries=()
  for h in a b; do
    o=b; [ "$h" = b ] && o=a
    mapfile -t ens < <(ens_opts "$out/adapt_$h")
    $python -m speechseq.bin.decode --model-dir "$out/adapt_$h" "${ens[@]}" --manifest "$out/test_$o.jsonl" \
      --method greedy --out "$out/adapt_$h/decode_test_${o}_greedy_ens$seeds"
    $python -m speechseq.bin.decode --model-dir "$out/adapt_$h" "${ens[@]}" --manifest "$out/test_$o.jsonl" \
      --method beam "${lm_opts[@]}" --out "$out/adapt_$h/decode_test_${o}_beam_lm_ens$seeds"
    summaries+=("$out/adapt_$h"/decode_test_${o}_*/summary.json)
  done
  {
    echo "Before adaptation: the fold's ensemble on the whole test set (the labels are its beam + LM row)"; echo
    $python -m speechseq.bin.score --table "$out/before_greedy/summary.json" "$out/label/summary.json"; echo
    echo "After: each half decoded by the ensemble adapted on the other half, and both pooled"; echo
    $python -m speechseq.bin.score --pooled --table "${summaries[@]}"
  } | tee "$out/RESULTS.md"
  mark_done 3
fi
