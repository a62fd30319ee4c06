#!/usr/bin/env bash
# MWER against a control: fine-tunes one trained Paraformer model the same number of steps at the same learning
# rate once per variant (the control with MWER off, then MWER variants), decodes every result greedily on the dev
# and test sets, and compares each variant with the control by a paired bootstrap (speechseq score --compare).
# The control separates MWER's effect from that of the extra training.
#   recipes/mwer_ablation.sh --model-dir EXP/paraformer_small --data DATA/small
#   recipes/mwer_ablation.sh --model-dir M --data D --steps 200 --variants "control swap_target nbest_inference"
# Variants (names for --variants):
#   control          MWER off (model.paraformer.mwer_weight=0): only the extra training
#   swap_target      mwer_weight 0.1, "swap" candidates on the target-length slots (the recipe's stage 3 default)
#   posterior        mwer_weight 0.1, candidates drawn from the decoder's posterior, target-length slots
#   nbest_inference  mwer_weight 0.1, the exact n-best of the slots that decoding uses (unscaled CIF + tail)
#   nbest_inference_w1  the same with mwer_weight 1.0 (MWER dominant, CE kept as a regulariser)
# Each variant goes to <model-dir>/ablation/<name>; finished variants are skipped (their .done marker).
# --seeds N trains every variant N times (train.seed = the model's seed + k, in <name>/seed<k> for k >= 1) and
# compares each variant's N runs with the control's N runs, errors pooled per utterance (speechseq score --hyp
# A A_seed1 ... --compare B B_seed1 ...): one fine-tuning run is one draw of data order, dropout and candidates.
# Options: --model-dir --data --train-set --dev-set --test-set --steps --lr --variants --seeds --device
#          --train-args "key=value ..."
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
model_dir=""; data=""; train_set=train; dev_set=dev; test_set=test; steps=200; lr=0.0002
variants="control swap_target nbest_inference"; device=auto; train_args=""; seeds=1
parse_options "$@"
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || die "--seeds must be a positive number of runs per variant, got '$seeds'"
[ -f "$model_dir/config.yaml" ] || die "--model-dir '$model_dir': no config.yaml (a trained Paraformer model directory)"
[ -f "$data/$train_set.jsonl" ] || die "--data '$data': no $train_set.jsonl"
python=${PYTHON:-python}
decode_device=$device; [ "$decode_device" = auto ] && decode_device=cpu
common="train.lr=$lr train.warmup_steps=20 train.schedule=constant train.max_steps=$steps train.average_last=1"
variant_args() {
  case "$1" in
    control) echo "model.paraformer.mwer_weight=0" ;;
    swap_target) echo "model.paraformer.mwer_weight=0.1 model.paraformer.mwer_sampling=swap model.paraformer.mwer_slots=target" ;;
    posterior) echo "model.paraformer.mwer_weight=0.1 model.paraformer.mwer_sampling=posterior" ;;
    nbest_inference) echo "model.paraformer.mwer_weight=0.1 model.paraformer.mwer_sampling=nbest model.paraformer.mwer_slots=inference" ;;
    nbest_inference_w1) echo "model.paraformer.mwer_weight=1.0 model.paraformer.mwer_sampling=nbest model.paraformer.mwer_slots=inference" ;;
    *) die "unknown variant '$1' (control swap_target posterior nbest_inference nbest_inference_w1)" ;;
  esac
}
for v in $variants; do variant_args "$v" >/dev/null; done  # fail on a bad name before training anything
case " $variants " in *" control "*) ;; *) die "--variants must include control (every variant is compared with it)" ;; esac
resolve_config "$model_dir/config.yaml" $train_args
base_seed=$(config_value train.seed)
run_dir() { if [ "$2" -eq 0 ]; then echo "$model_dir/ablation/$1"; else echo "$model_dir/ablation/$1/seed$2"; fi; }
for v in $variants; do
  for ((k = 0; k < seeds; k++)); do
    out=$(run_dir "$v" "$k")
    [ -f "$out/.done" ] && continue
    log "variant $v, run $((k + 1)) of $seeds (train.seed=$((base_seed + k))): $(variant_args "$v")"
    $python -m speechseq.bin.train --config "$model_dir/config.yaml" --exp "$out" --init "$model_dir" \
      --train "$data/$train_set.jsonl" --dev "$data/$dev_set.jsonl" --device "$device" \
      $common $(variant_args "$v") $train_args train.seed=$((base_seed + k))
    for set in "$dev_set" "$test_set"; do
      $python -m speechseq.bin.decode --model-dir "$out" --manifest "$data/$set.jsonl" --out "$out/decode_$set" \
        --method greedy --device "$decode_device"
    done
    touch "$out/.done"
  done
done
summaries=()
for v in $variants; do for ((k = 0; k < seeds; k++)); do for set in "$dev_set" "$test_set"; do
  summaries+=("$(run_dir "$v" "$k")/decode_$set/summary.json")
done; done; done
$python -m speechseq.bin.score --table "${summaries[@]}"
hyps() { for ((k = 0; k < seeds; k++)); do echo "$(run_dir "$1" "$k")/decode_$2/hyp.jsonl"; done; }
for v in $variants; do
  [ "$v" = control ] && continue
  for set in "$dev_set" "$test_set"; do
    # captured first: a failing score inside "echo $(...)" would not stop the script (set -e ignores it there)
    mapfile -t runs_a < <(hyps control "$set"); mapfile -t runs_b < <(hyps "$v" "$set")
    res=$($python -m speechseq.bin.score --hyp "${runs_a[@]}" --compare "${runs_b[@]}")
    echo "$v vs control, $set: $(tail -1 <<< "$res")"
  done
done
