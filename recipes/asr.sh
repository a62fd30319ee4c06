#!/usr/bin/env bash
# Shared ASR recipe stages, called by egs/<corpus>/asr/run.sh after it sets the corpus variables.
#   0 prepare data        (runs $prepare_cmd, which writes $data/{train,dev,<tests>}.jsonl)
#   1 tokenizer, LM       (SentencePiece on the training transcripts -> $exp/tokenizer.model; CTC and Paraformer
#                          models also get a token n-gram LM on the same transcripts -> $exp/lm.arpa, --lm-order 0
#                          skips it)
#   2 train               (python -m speechseq.bin.train; resumes from $exp/checkpoints)
#   3 MWER fine-tuning    (Paraformer only: --mwer-steps from $exp into $exp/mwer; skipped for CTC and AED)
#   4 decode              (each model x test set x decode method -> <model>/decode_<set>_<method>/summary.json)
#   5 score               (prints the WER table, also written to $exp/RESULTS.md)
# The model kind (ctc, paraformer, aed) comes from the config; decode methods default to "greedy beam" (CTC: prefix
# beam; AED: beam search) and "greedy" for Paraformer; CTC and Paraformer add "beam_lm" (CTC prefix beam search, or
# Paraformer's beam over its CIF slots, with the n-gram LM fused at --lm-weight, --lm-bonus per token). AED beam
# search takes an LM too (decode --lm), but one estimated on the same transcripts as its decoder did not help it
# (egs/synth_en/asr/RESULTS.md), so it is not a default here.
# Options (--name value): --stage --stop-stage --force --config --exp --data --train-set --dev-set --test-sets
#   --decode-methods --beam-size --device --nproc --train-args "key=value ..." --mwer-steps N --mwer-args "..."
#   --lm-order N --lm-weight W --lm-bonus B --init MODEL_DIR (fine-tune a trained model: stage 1 takes its tokenizer,
#   stage 2 starts from its weights; the config must describe the same architecture, e.g. config=MODEL_DIR/config.yaml)
#   --warps "0.8,0.85,...,1.2" --warp-by speaker|utterance (stage 4 also decodes every method with test-time VTLN
#   over these factors, into decode_<set>_<method>_vtln: one factor per manifest speaker by default, or per
#   utterance; one model, not the --seeds ensemble)
#   --seeds N (stage 2 also trains N-1 more models, $exp/seed1 ... with train.seed + 1 ..., and stage 4 decodes the
#   ensemble of all N beside the first model alone: decode --ensemble, into decode_<set>_<method>_ens<N>; with
#   --init every member starts from the same weights; for Paraformer the ensemble is of the models before MWER)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

stage=${stage:-0}; stop_stage=${stop_stage:-100}; force=${force:-false}
config=${config:?the corpus run.sh must set config}
exp=${exp:?the corpus run.sh must set exp}
data=${data:?the corpus run.sh must set data}
prepare_cmd=${prepare_cmd:-}
train_set=${train_set:-train}; dev_set=${dev_set:-dev}; test_sets=${test_sets:-test}
decode_methods=${decode_methods:-}; beam_size=${beam_size:-10}
mwer_steps=${mwer_steps:-300}
mwer_args=${mwer_args:-"model.paraformer.mwer_weight=0.1 train.lr=0.0002 train.warmup_steps=20 train.schedule=constant"}
device=${device:-auto}; nproc=${nproc:-1}; train_args=${train_args:-}
tokenizer_type=${tokenizer_type:-}; vocab_size=${vocab_size:-}
lm_order=${lm_order:-6}; lm_weight=${lm_weight:-0.6}; lm_bonus=${lm_bonus:-1.5}
init=${init:-}; seeds=${seeds:-1}
warps=${warps:-}; warp_by=${warp_by:-speaker}
parse_options "$@"
check_stages
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || die "--seeds must be a positive number of models, got '$seeds'"
case "$warp_by" in speaker|utterance) ;; *) die "--warp-by must be speaker or utterance, got '$warp_by'" ;; esac
done_dir=$exp
stage_names=([0]="prepare data" [1]="tokenizer and LM" [2]="train" [3]="MWER fine-tuning" [4]="decode" [5]="score")
python=${PYTHON:-python}
resolve_config "$config" $train_args
kind=$(config_value model.kind)
if [ -z "$decode_methods" ]; then
  decode_methods="greedy beam"; [ "$kind" = paraformer ] && decode_methods=greedy
  [ "$kind" != aed ] && [ "$lm_order" -gt 0 ] && decode_methods="$decode_methods beam_lm"
fi
members=(); for ((k = 1; k < seeds; k++)); do members+=("$exp/seed$k"); done
models=("$exp"); [ "$kind" = paraformer ] && [ "$mwer_steps" -gt 0 ] && models+=("$exp/mwer")
decode_device=$device; [ "$decode_device" = auto ] && decode_device=cpu
mkdir -p "$exp"

if stage 0; then
  [ -n "$prepare_cmd" ] || die "no prepare_cmd set by the corpus run.sh"
  eval "$prepare_cmd"
  mark_done 0
fi

if stage 1; then
  [ -f "$data/$train_set.jsonl" ] || die "$data/$train_set.jsonl not found: run stage 0"
  if [ -n "$init" ]; then
    [ -f "$init/tokenizer.model" ] || die "--init $init: not a model directory (no tokenizer.model)"
    cp "$init/tokenizer.model" "$exp/tokenizer.model"
    log "stage 1: tokenizer of $init"
  else
    tok_type=${tokenizer_type:-$(config_value tokenizer.model_type)}
    tok_size=${vocab_size:-$(config_value tokenizer.vocab_size)}
    $python -m speechseq.bin.tokenizer --manifest "$data/$train_set.jsonl" --out "$exp" \
      --model-type "$tok_type" --vocab-size "$tok_size" --character-coverage "$(config_value tokenizer.character_coverage)"
  fi
  if [ "$kind" != aed ] && [ "$lm_order" -gt 0 ]; then
    $python -m speechseq.bin.lm --manifest "$data/$train_set.jsonl" --tokenizer "$exp/tokenizer.model" \
      --order "$lm_order" --out "$exp/lm.arpa"
  fi
  mark_done 1
fi

launcher=("$python" -m speechseq.bin.train)
[ "$nproc" -gt 1 ] && launcher=("$python" -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m speechseq.bin.train)
if stage 2; then
  start_opts=(--tokenizer "$exp/tokenizer.model"); [ -n "$init" ] && start_opts=(--init "$init")
  "${launcher[@]}" --config "$config" --exp "$exp" --train "$data/$train_set.jsonl" \
    --dev "$data/$dev_set.jsonl" "${start_opts[@]}" --device "$device" $train_args
  if [ "$seeds" -gt 1 ]; then
    base_seed=$(config_value train.seed)
    for ((k = 1; k < seeds; k++)); do
      log "stage 2: ensemble member $k of $((seeds - 1)): train.seed=$((base_seed + k)) -> $exp/seed$k"
      "${launcher[@]}" --config "$config" --exp "$exp/seed$k" --train "$data/$train_set.jsonl" \
        --dev "$data/$dev_set.jsonl" "${start_opts[@]}" --device "$device" $train_args train.seed=$((base_seed + k))
    done
  fi
  mark_done 2
fi

if stage 3; then
  if [ "$kind" = paraformer ] && [ "$mwer_steps" -gt 0 ]; then
    "${launcher[@]}" --config "$config" --exp "$exp/mwer" --init "$exp" \
      --train "$data/$train_set.jsonl" --dev "$data/$dev_set.jsonl" --device "$device" \
      $train_args $mwer_args train.max_steps="$mwer_steps"
  else
    log "stage 3: nothing to do for a $kind model (MWER fine-tuning is for Paraformer; --mwer-steps $mwer_steps)"
  fi
  mark_done 3
fi

if stage 4; then
  for m in "${members[@]}"; do  # e.g. an experiment trained before --seeds, decoded again with it
    [ -f "$m/model.pt" ] || die "--seeds $seeds: ensemble member $m is not trained; run stage 2 again (--stage 2 --force true)"
  done
  for model in "${models[@]}"; do
    for set in $test_sets; do
      for method in $decode_methods; do
        lm_opts=(--method "$method")
        if [ "$method" = beam_lm ]; then
          [ -f "$exp/lm.arpa" ] || die "$exp/lm.arpa not found: run stage 1 with --lm-order > 0"
          lm_opts=(--method beam --lm "$exp/lm.arpa" --lm-weight "$lm_weight" --lm-bonus "$lm_bonus")
        fi
        $python -m speechseq.bin.decode --model-dir "$model" --manifest "$data/$set.jsonl" \
          --out "$model/decode_${set}_${method}" "${lm_opts[@]}" --beam-size "$beam_size" --device "$decode_device"
        if [ -n "$warps" ]; then
          $python -m speechseq.bin.decode --model-dir "$model" --manifest "$data/$set.jsonl" \
            --out "$model/decode_${set}_${method}_vtln" "${lm_opts[@]}" --beam-size "$beam_size" \
            --device "$decode_device" --warps "$warps" --warp-by "$warp_by"
        fi
        if [ "$model" = "$exp" ] && [ "$seeds" -gt 1 ]; then
          ens_opts=(); for m in "${members[@]}"; do ens_opts+=(--ensemble "$m"); done
          $python -m speechseq.bin.decode --model-dir "$model" "${ens_opts[@]}" --manifest "$data/$set.jsonl" \
            --out "$model/decode_${set}_${method}_ens$seeds" "${lm_opts[@]}" --beam-size "$beam_size" \
            --device "$decode_device"
        fi
      done
    done
  done
  mark_done 4
fi

if stage 5; then
  summaries=()
  for model in "${models[@]}"; do for set in $test_sets; do for method in $decode_methods; do
    summaries+=("$model/decode_${set}_${method}/summary.json")
    [ -n "$warps" ] && summaries+=("$model/decode_${set}_${method}_vtln/summary.json")
    if [ "$model" = "$exp" ] && [ "$seeds" -gt 1 ]; then
      summaries+=("$model/decode_${set}_${method}_ens$seeds/summary.json")
    fi
  done; done; done
  table=$($python -m speechseq.bin.score --table "${summaries[@]}")
  { echo "# $(basename "$exp") ($(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown))"; echo; echo "$table"; } > "$exp/RESULTS.md"
  echo; echo "$table"; echo
fi
