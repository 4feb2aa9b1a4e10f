#!/usr/bin/env bash
# Submit a ray-pipeline command to a Ray cluster as a Ray job.
#
#   cluster/submit.sh [options] -- ENTRYPOINT...
#
#   --address URL          the cluster's dashboard / job server
#                          (default: $RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265)
#   --submission-id ID     the job's id; reuse it in `ray job logs/status/stop`
#                          (default: rp-<UTC time>-<git short sha>)
#   --runtime-env FILE     runtime environment YAML (default: cluster/runtime_env.yaml)
#   --follow               after submitting, stream the logs until the job ends and exit with 0
#                          only if it SUCCEEDED
#   --dry-run              print the `ray job submit` argv, one element per line, and exit
#
# The job uploads the repository root (--working-dir .) and returns at once (--no-wait); the
# commands to follow it are printed. Token authentication is on unless RAY_AUTH_MODE says
# otherwise: the client reads the token from $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or
# ~/.ray/auth_token. See docs/cluster.md.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "submit.sh: $*" >&2; exit 2; }

address="${RAY_API_SERVER_ADDRESS:-http://127.0.0.1:8265}"
submission_id=""
runtime_env=""
follow=0
dry_run=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --address) [[ $# -ge 2 ]] || die "--address needs a value"; address="$2"; shift 2 ;;
    --address=*) address="${1#*=}"; shift ;;
    --submission-id) [[ $# -ge 2 ]] || die "--submission-id needs a value"; submission_id="$2"; shift 2 ;;
    --submission-id=*) submission_id="${1#*=}"; shift ;;
    --runtime-env) [[ $# -ge 2 ]] || die "--runtime-env needs a value"; runtime_env="$2"; shift 2 ;;
    --runtime-env=*) runtime_env="${1#*=}"; shift ;;
    --follow) follow=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option $1 (the entrypoint goes after --; see --help)" ;;
  esac
done
[[ $# -gt 0 ]] || die "no entrypoint: cluster/submit.sh [options] -- ray-pipeline run CONFIG --run-dir DIR"

# A runtime env given relative to the caller's directory must survive the cd below.
if [[ -n "$runtime_env" ]]; then
  [[ -f "$runtime_env" ]] || die "runtime env file not found: $runtime_env"
  runtime_env="$(cd "$(dirname "$runtime_env")" && pwd)/$(basename "$runtime_env")"
fi

# The working directory uploaded is always the repository root, wherever this is called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runtime_env="${runtime_env:-cluster/runtime_env.yaml}"

git_sha="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
git_dirty=false
if [[ "$git_sha" != unknown ]] && [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  git_dirty=true
fi
if [[ -z "$submission_id" ]]; then
  submission_id="rp-$(date -u +%Y%m%d-%H%M%S)-${git_sha:0:8}"
fi

# Ray 2.59+ clusters use token auth; the job client only sends the token when told to.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"

cmd=(ray job submit
  --address "$address"
  --submission-id "$submission_id"
  --working-dir .
  --runtime-env "$runtime_env"
  --metadata-json "{\"git_sha\": \"$git_sha\", \"git_dirty\": \"$git_dirty\"}"
  --no-wait
  -- "$@")

if [[ $dry_run -eq 1 ]]; then
  printf '%s\n' "${cmd[@]}"
  exit 0
fi

echo "+ ${cmd[*]}" >&2
"${cmd[@]}"

cat >&2 <<MSG

Submitted $submission_id to $address. Follow it with:
  ray job logs --follow --address $address $submission_id
  ray job status --address $address $submission_id
  ray job stop --address $address $submission_id
MSG

if [[ $follow -eq 1 ]]; then
  ray job logs --follow --address "$address" "$submission_id"
  status="$(ray job status --address "$address" "$submission_id" 2>&1)"
  echo "$status" >&2
  # `ray job status` ends with "Job '<id>' succeeded" (or failed/stopped).
  [[ "$status" == *"Job '$submission_id' succeeded"* ]] || exit 1
fi
