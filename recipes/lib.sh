# Shared shell helpers for recipes: logging, --option parsing, stage guards with .done markers.
# Source it after declaring the option variables with their defaults.

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [$(basename "$0")] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# parse_options "$@": every "--some-name value" sets the already-declared variable some_name.
# Unknown options are errors; "--" ends the options and leaves the rest in $extra_args.
parse_options() {
  extra_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --help|-h) grep -E '^# ' "$0" | sed 's/^# //'; exit 0 ;;
      --) shift; extra_args=("$@"); break ;;
      --*=*) name="${1%%=*}"; value="${1#*=}"; shift ;;
      --*) [ $# -ge 2 ] || die "option $1 needs a value"; name="$1"; value="$2"; shift 2 ;;
      *) die "unexpected argument '$1' (options are --name value)" ;;
    esac
    var="${name#--}"; var="${var//-/_}"
    if ! declare -p "$var" >/dev/null 2>&1; then die "unknown option $name"; fi
    printf -v "$var" '%s' "$value"
  done
}

# check_stages: --stage and --stop-stage must be integers (a typo would otherwise skip every stage silently)
check_stages() {
  [[ "$stage" =~ ^[0-9]+$ ]] || die "--stage must be a stage number, got '$stage'"
  [[ "$stop_stage" =~ ^[0-9]+$ ]] || die "--stop-stage must be a stage number, got '$stop_stage'"
}

# stage N: true when N is within [stage, stop_stage] and its .done marker (in $done_dir) is absent.
stage() {
  local n=$1
  [ "$n" -ge "$stage" ] && [ "$n" -le "$stop_stage" ] || return 1
  if [ -f "$done_dir/.stage$n.done" ] && [ "$force" != "true" ]; then
    log "stage $n already done ($done_dir/.stage$n.done); --force true to redo"
    return 1
  fi
  log "stage $n: ${stage_names[$n]:-}"
  return 0
}
mark_done() { mkdir -p "$done_dir"; touch "$done_dir/.stage$1.done"; }

# resolve_config CONFIG [key=value ...]: resolves the YAML config with its overrides once (into $resolved_config);
# then config_value a.b.c prints one of its values. Both use $python, the recipe's interpreter.
resolve_config() {
  resolved_config=$($python -m speechseq.bin.train --config "$1" --print-config "${@:2}")
}
config_value() {
  printf '%s\n' "$resolved_config" | $python -c 'import sys, yaml; v = yaml.safe_load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$1"
}
