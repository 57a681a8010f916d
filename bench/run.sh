#!/usr/bin/env bash
# Custos benchmark: start-up time, idle memory, and throughput/latency of the token endpoint
# (client_credentials), the JWKS document, refresh-token rotation and the whole browser sign-in flow,
# with the server pinned to one core and the load generator (wrk, or examples/loadgen.rs for the
# browser flows) to another. See bench/README.md. Everything goes to 127.0.0.1; every step is bounded
# in time.
#
#   bench/run.sh                                   # ES256, all scenarios, 15 s each
#   ALG=RS256 SCENARIOS=client_credentials bench/run.sh
#   SCENARIOS=refresh,login bench/run.sh
#   SKIP_BUILD=1 DURATION=30 bench/run.sh
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

# ---- knobs ------------------------------------------------------------------------------------------
ALG=${ALG:-ES256}                       # CUSTOS_ACCESS_TOKEN_ALG: ES256 | RS256 | EdDSA
DURATION=${DURATION:-15}                # seconds per scenario
LOGIN_DURATION=${LOGIN_DURATION:-60}    # seconds of load for login (in stretches of PROBE_EVERY)
WARMUP=${WARMUP:-2}                     # seconds of warm-up before each scenario; 0 = none
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}                   # wrk threads
WORKERS=${WORKERS:-32}                  # loadgen workers (refresh, login): one connection each
MINT_BROWSERS=${MINT_BROWSERS:-$WORKERS} # refresh: browsers that sign in to mint the workers' tokens
ARGON2_N=${ARGON2_N:-50}                # argon2id verifications timed for the login target (before and after)
PROBE_EVERY=${PROBE_EVERY:-3}           # login: seconds of load between argon2id probes on the server's core (0 = none)
PROBE_N=${PROBE_N:-15}                  # login: verifications per probe
PROBE_AGREE=${PROBE_AGREE:-0}           # login: judge a stretch only when its two probes agree within this % (0 = all)
SIDE_EVERY_MS=${SIDE_EVERY_MS:-50}      # login: also GET the JWKS every this many ms during the load and report its latency (0 = no)
EXTRA_ENV=${EXTRA_ENV:-}                # more CUSTOS_NAME=value settings for the server and the CLI
WEB_CLIENT_ARGS=${WEB_CLIENT_ARGS:-}    # more `custos client create` flags for the browser client
SCENARIOS=${SCENARIOS:-all}             # all | comma/space list of: client_credentials jwks refresh login
STARTUP_RUNS=${STARTUP_RUNS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
STRICT=${STRICT:-0}                     # 1: also exit non-zero when a target is missed
KEEP_TMP=${KEEP_TMP:-0}                 # 1: keep the temporary directory (server log, wrk output)
PERF=${PERF:-0}                         # 1: perf-record the server during each measured run
PERF_FREQ=${PERF_FREQ:-999}             # samples/s for PERF=1
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/custos}
LOADGEN=${LOADGEN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/loadgen}

# Targets (one server core, 32 connections, 15 s). The client_credentials target is stated for ES256.
TARGET_CC_RPS=${TARGET_CC_RPS:-20000}
TARGET_JWKS_RPS=${TARGET_JWKS_RPS:-50000}
TARGET_IDLE_RSS_MIB=${TARGET_IDLE_RSS_MIB:-20}
TARGET_STARTUP_MS=${TARGET_STARTUP_MS:-50}
TARGET_REFRESH_RPS=${TARGET_REFRESH_RPS:-5000}
# Login flows/s must reach this share of 1 / (one argon2id verification at the server's parameters).
TARGET_LOGIN_FRACTION=${TARGET_LOGIN_FRACTION:-0.9}

ALL_SCENARIOS=(client_credentials jwks refresh login)

say() { printf '%s\n' "$*"; }
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 2; }

# ---- arguments ------------------------------------------------------------------------------------
case "$ALG" in ES256 | RS256 | EdDSA) ;; *) die "ALG must be ES256, RS256 or EdDSA (got '$ALG')" ;; esac
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer (seconds)"
[[ "$LOGIN_DURATION" =~ ^[1-9][0-9]*$ ]] || die "LOGIN_DURATION must be a positive integer (seconds)"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer (seconds)"
[[ "$STARTUP_RUNS" =~ ^[1-9][0-9]*$ ]] || die "STARTUP_RUNS must be a positive integer"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer"
[[ "$MINT_BROWSERS" =~ ^[1-9][0-9]*$ ]] || die "MINT_BROWSERS must be a positive integer"
[[ "$ARGON2_N" =~ ^[1-9][0-9]*$ ]] || die "ARGON2_N must be a positive integer"
[[ "$PROBE_EVERY" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "PROBE_EVERY must be a non-negative number (seconds)"
[[ "$PROBE_N" =~ ^[1-9][0-9]*$ ]] || die "PROBE_N must be a positive integer"
[[ "$PROBE_AGREE" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "PROBE_AGREE must be a non-negative number (percent)"
[[ "$SIDE_EVERY_MS" =~ ^[0-9]+$ ]] || die "SIDE_EVERY_MS must be a non-negative integer (milliseconds)"

SELECTED=()
if [[ "$SCENARIOS" == all ]]; then
    SELECTED=("${ALL_SCENARIOS[@]}")
else
    for s in ${SCENARIOS//,/ }; do
        case " ${ALL_SCENARIOS[*]} " in
            *" $s "*) SELECTED+=("$s") ;;
            *) die "unknown scenario '$s' (known: ${ALL_SCENARIOS[*]})" ;;
        esac
    done
fi
((${#SELECTED[@]} > 0)) || die "SCENARIOS selects nothing"
# Scenarios driven by examples/loadgen.rs (they need a user and a browser client).
USE_LOADGEN=0
for s in "${SELECTED[@]}"; do [[ "$s" == refresh || "$s" == login ]] && USE_LOADGEN=1; done

# ---- tools ----------------------------------------------------------------------------------------
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v wrk >/dev/null 2>&1; then
    log "wrk not found: installing it with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v wrk >/dev/null 2>&1 || die "wrk is still missing"
command -v taskset >/dev/null 2>&1 || die "taskset is missing (util-linux)"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"
command -v timeout >/dev/null 2>&1 || die "timeout is missing (coreutils)"
if [[ "$PERF" == 1 ]] && ! command -v perf >/dev/null 2>&1; then
    log "perf not found: installing linux-perf with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null ||
        { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
    command -v perf >/dev/null 2>&1 || die "PERF=1 but perf is missing"
fi

NCPU=$(nproc --all)
((SERVER_CPU < NCPU && LOAD_CPU < NCPU)) ||
    die "SERVER_CPU=$SERVER_CPU / LOAD_CPU=$LOAD_CPU need a machine with more than $NCPU CPUs"
[[ "$SERVER_CPU" != "$LOAD_CPU" ]] || log "warning: server and load generator share CPU $SERVER_CPU"

# ---- build ----------------------------------------------------------------------------------------
if [[ "$SKIP_BUILD" != 1 ]]; then
    build_args=(--bin custos)
    [[ "$USE_LOADGEN" == 1 ]] && build_args+=(--example loadgen)
    log "cargo build --release ${build_args[*]} (SKIP_BUILD=1 skips this)"
    (cd "$ROOT" && cargo build --release "${build_args[@]}")
fi
[[ -x "$BIN" ]] || die "no binary at $BIN (build it, or set BIN=)"
if [[ "$USE_LOADGEN" == 1 ]]; then
    [[ -x "$LOADGEN" ]] ||
        die "no load generator at $LOADGEN (cargo build --release --example loadgen, or set LOADGEN=)"
fi

# ---- scratch directory, environment, cleanup --------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/custos-bench.XXXXXX")
PIDFILE="$TMP/server.pid"
SERVER_LOG="$TMP/server.log"
SERVER_PID=""
PERF_PID=""
LG_PID=""

stop_server() {
    local pid=""
    [[ -s "$PIDFILE" ]] && pid=$(<"$PIDFILE")
    [[ -n "$SERVER_PID" ]] && pid=$SERVER_PID
    [[ -n "$pid" ]] || return 0
    if [[ -d /proc/$pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == custos ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            [[ -d /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
            sleep 0.1
        done
        [[ -d /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null &&
            kill -KILL "$pid" 2>/dev/null || true
    fi
    SERVER_PID=""
    rm -f "$PIDFILE"
}

cleanup() {
    local rc=$?
    [[ -n "$PERF_PID" ]] && kill -INT "$PERF_PID" 2>/dev/null || true
    [[ -n "$LG_PID" ]] && kill -TERM "$LG_PID" 2>/dev/null || true
    stop_server
    if [[ -n "${PG_DB:-}" ]]; then
        psql -q -h 127.0.0.1 -U postgres -c "drop database if exists $PG_DB with (force)" >/dev/null 2>&1 || true
        redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "custos-bench-$$:*" 2>/dev/null | xargs -r -n 500 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null 2>&1 || true
    fi
    if [[ "$KEEP_TMP" == 1 ]]; then
        log "kept $TMP (server.log, wrk-*.txt, loadgen-*.txt)"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${PORT:-}" ]]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
URL="http://127.0.0.1:$PORT"

# Only the configuration below; a custos.toml is never read (the server and CLI run in $TMP) and
# stray CUSTOS_* variables from the caller's shell are dropped so that runs are comparable.
while IFS='=' read -r name _; do
    [[ "$name" == CUSTOS_* ]] && unset "$name"
done < <(env)
export CUSTOS_DATABASE_URL="sqlite://$TMP/data/custos.db?mode=rwc"
export CUSTOS_KEYS_DIR="$TMP/keys"
export CUSTOS_LISTEN="127.0.0.1:$PORT"
export CUSTOS_ISSUER="$URL"
export CUSTOS_LOG_LEVEL=warn
export CUSTOS_ACCESS_TOKEN_ALG="$ALG"
# Every loadgen worker signs the same account in at once, and the per-account brute-force limit also
# turns away concurrent attempts beyond it (they are not yet known to succeed): raise it for the run.
# The counters are still kept and checked on every sign-in, so their cost is in the figures.
export CUSTOS_LOGIN_MAX_FAILURES=1000
# EXTRA_ENV="CUSTOS_X=1 CUSTOS_Y=2": more server (and CLI) settings for this run, e.g. cheap argon2
# parameters to measure what a sign-in costs besides the password hash. The login target follows them.
for kv in $EXTRA_ENV; do
    [[ "$kv" =~ ^CUSTOS_[A-Z0-9_]+=.*$ ]] || die "EXTRA_ENV takes CUSTOS_NAME=value words (got '$kv')"
    export "${kv?}"
done
# BACKEND=postgres: the production backends (Postgres on 127.0.0.1:5432 as user postgres, Redis on
# 127.0.0.1:6379), with a database and a Redis key prefix of this run's own, dropped at exit.
BACKEND=${BACKEND:-sqlite}
PG_DB=""
if [[ "$BACKEND" == postgres ]]; then
    PG_DB="custos_bench_$$"
    psql -q -h 127.0.0.1 -U postgres -c "create database $PG_DB" >/dev/null || die "cannot create Postgres database $PG_DB"
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || die "Redis on 127.0.0.1:6379 is not reachable"
    export CUSTOS_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$PG_DB"
    export CUSTOS_REDIS_URL="redis://127.0.0.1:6379"
    export CUSTOS_REDIS_PREFIX="custos-bench-$$:"
elif [[ "$BACKEND" != sqlite ]]; then
    die "BACKEND must be sqlite or postgres"
fi
mkdir -p "$TMP/data"
cd "$TMP"

# The same settings as a custos.toml in the server's working directory: the environment wins over the
# file, so with a build that honours CUSTOS_* this changes nothing, and with one that ignores them (see
# the check below) the run still uses the scratch directory and port instead of ./data, ./keys, :8080.
toml_str() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
{
    printf 'database_url = %s\n' "$(toml_str "$CUSTOS_DATABASE_URL")"
    printf 'keys_dir = %s\n' "$(toml_str "$CUSTOS_KEYS_DIR")"
    printf 'listen = %s\n' "$(toml_str "$CUSTOS_LISTEN")"
    printf 'issuer = %s\n' "$(toml_str "$CUSTOS_ISSUER")"
    printf 'log_level = %s\n' "$(toml_str "$CUSTOS_LOG_LEVEL")"
    printf 'access_token_alg = %s\n' "$(toml_str "$CUSTOS_ACCESS_TOKEN_ALG")"
} >"$TMP/custos.toml"

# Does this build read CUSTOS_* at all? Ask it, from a directory without the file.
env_seen=$(cd / && timeout 30 "$BIN" config check 2>/dev/null | sed -n 's/^listen = "\(.*\)"$/\1/p' || true)
if [[ "$env_seen" != "$CUSTOS_LISTEN" ]]; then
    ENV_NOTE="this build ignores CUSTOS_* environment variables (config check: listen=$env_seen, env says $CUSTOS_LISTEN); the run is configured through $TMP/custos.toml instead"
    log "warning: $ENV_NOTE"
else
    ENV_NOTE=""
fi
# Whatever the source, the effective configuration must be ours.
eff=$(timeout 30 "$BIN" config check 2>/dev/null) || die "custos config check failed"
for kvp in "listen = \"$CUSTOS_LISTEN\"" "access_token_alg = \"$ALG\"" "keys_dir = \"$CUSTOS_KEYS_DIR\""; do
    grep -qxF "$kvp" <<<"$eff" || die "effective configuration lacks: $kvp"
done

# ---- helpers ----------------------------------------------------------------------------------------
server_alive() {
    [[ -n "$SERVER_PID" && -d /proc/$SERVER_PID ]] &&
        [[ $(cat "/proc/$SERVER_PID/comm" 2>/dev/null) == custos ]] &&
        ! grep -q '^State:.*Z' "/proc/$SERVER_PID/status" 2>/dev/null
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
proc_threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }

# utime+stime of a process, in clock ticks.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Context switches (voluntary + involuntary) of a process's live threads; threads that exited in between
# are not counted, so this is a lower bound.
proc_ctxsw() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
# "busy total" ticks of one CPU from /proc/stat.
cpu_ticks() {
    awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

server_cmd=(taskset -c "$SERVER_CPU" "$BIN" serve)

# ---- header -----------------------------------------------------------------------------------------
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_changes=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true)
git_dirty=$([[ -n "$git_changes" ]] && echo "+dirty" || true)
say "== Custos benchmark =="
say "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit:      $git_rev$git_dirty"
say "binary:      $BIN ($(stat -c %s "$BIN" | awk '{ printf "%.1f MiB", $1 / 1048576 }'), built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
say "cpu:         $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) x $NCPU; kernel $(uname -r)"
say "wrk:         $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
say "config:      alg=$ALG server_cpu=$SERVER_CPU load_cpu=$LOAD_CPU wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s (warm-up ${WARMUP}s)"
[[ "$USE_LOADGEN" == 1 ]] &&
    say "loadgen:     $LOADGEN, $WORKERS workers, refresh ${DURATION}s, login ${LOGIN_DURATION}s$([[ "$PROBE_EVERY" != 0 ]] && echo " with an argon2id probe every ${PROBE_EVERY}s") (warm-up ${WARMUP}s)"
say "scenarios:   ${SELECTED[*]}"
say "loadavg:     $(cut -d' ' -f1-3 /proc/loadavg) (anything else busy on these cores skews the figures)"
say "scratch:     $TMP"
[[ -n "$ENV_NOTE" ]] && say "WARNING:     $ENV_NOTE"
say ""

# ---- 1. first start: creates the KEK and the signing keys ------------------------------------------------
say "-- first start (creates keys)"
python3 "$BENCH_DIR/startup.py" --port "$PORT" --runs 1 --log "$SERVER_LOG" \
    --label first_start_to_first_200_ms --pidfile "$PIDFILE" -- "${server_cmd[@]}" ||
    { tail -20 "$SERVER_LOG" >&2; die "the server did not start"; }
[[ -s "$TMP/keys/kek" ]] || log "note: no $TMP/keys/kek after the first start"

# ---- 2. start-up with keys present, N times; the last one keeps running ----------------------------------
say "-- start-up with keys present ($STARTUP_RUNS runs)"
startup_out=$(python3 "$BENCH_DIR/startup.py" --port "$PORT" --runs "$STARTUP_RUNS" --keep-last \
    --log "$SERVER_LOG" --pidfile "$PIDFILE" -- "${server_cmd[@]}") ||
    { printf '%s\n' "$startup_out"; tail -20 "$SERVER_LOG" >&2; die "start-up measurement failed"; }
printf '%s\n' "$startup_out" | grep -v '^server_pid='
SERVER_PID=$(printf '%s\n' "$startup_out" | sed -n 's/^server_pid=//p')
if ((STARTUP_RUNS > 1)); then
    STARTUP_MS=$(printf '%s\n' "$startup_out" | sed -n 's/.* median=\([0-9.]*\).*/\1/p')
else
    STARTUP_MS=$(printf '%s\n' "$startup_out" | awk '/ run=1 / { print $3 }')
fi
server_alive || die "the server (pid '$SERVER_PID') is not running after the start-up runs"
say "startup_to_first_200_ms (median of $STARTUP_RUNS): $STARTUP_MS"

# ---- 3. idle memory ----------------------------------------------------------------------------------
sleep 1
IDLE_RSS=$(rss_mib "$SERVER_PID")
say ""
say "-- idle: pid=$SERVER_PID comm=$(cat "/proc/$SERVER_PID/comm") affinity=$(taskset -pc "$SERVER_PID" | awk -F': ' '{ print $2 }') threads=$(proc_threads "$SERVER_PID")"
say "idle_vmrss_mib: $IDLE_RSS"

# ---- 4. a confidential client, through the CLI -----------------------------------------------------
client_json=$(timeout 60 "$BIN" client create --name bench --scope read --json) ||
    die "custos client create failed"
read -r CLIENT_ID CLIENT_SECRET < <(printf '%s' "$client_json" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["id"], d["client_secret"])')
[[ -n "$CLIENT_ID" && -n "$CLIENT_SECRET" && "$CLIENT_SECRET" != None ]] ||
    die "client create printed no id/secret"
say "client:      $CLIENT_ID (confidential, scope read)"

# One request by hand: the token endpoint answers 200 and signs with the configured algorithm.
python3 - "$PORT" "$CLIENT_ID" "$CLIENT_SECRET" "$ALG" <<'PY' || die "sanity request failed"
import base64, http.client, json, sys, urllib.parse
port, cid, secret, alg = sys.argv[1:5]
basic = base64.b64encode(f"{urllib.parse.quote(cid, safe='')}:{urllib.parse.quote(secret, safe='')}".encode()).decode()
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
c.request("POST", "/token", "grant_type=client_credentials",
          {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); body = r.read()
if r.status != 200:
    sys.exit(f"POST /token: {r.status} {body[:300]!r}")
tok = json.loads(body)["access_token"]
hdr = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
if hdr.get("alg") != alg:
    sys.exit(f"access token alg {hdr.get('alg')!r}, expected {alg!r}")
c.request("GET", "/.well-known/jwks.json"); r = c.getresponse(); jw = r.read()
if r.status != 200:
    sys.exit(f"GET jwks: {r.status}")
print(f"sanity:      POST /token 200, access token {len(tok)} bytes, alg {hdr['alg']}; "
      f"jwks 200, {len(jw)} bytes, {len(json.loads(jw)['keys'])} keys")
PY

# A person and a first-party browser client (no consent page), through the CLI, for refresh and login.
if [[ "$USE_LOADGEN" == 1 ]]; then
    BENCH_EMAIL=bench@example.com
    BENCH_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    WEB_REDIRECT=http://127.0.0.1/callback
    printf '%s\n' "$BENCH_PASSWORD" |
        timeout 60 "$BIN" user create --email "$BENCH_EMAIL" --name "Bench User" --password-stdin \
            >/dev/null || die "custos user create failed"
    web_json=$(timeout 60 "$BIN" client create --name bench-web --redirect-uri "$WEB_REDIRECT" \
        --scope openid --skip-consent $WEB_CLIENT_ARGS --json) || die "custos client create (browser client) failed"
    read -r WEB_ID WEB_SECRET < <(printf '%s' "$web_json" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["id"], d["client_secret"])')
    [[ -n "$WEB_ID" && -n "$WEB_SECRET" && "$WEB_SECRET" != None ]] ||
        die "client create printed no id/secret for the browser client"
    # The server's own argon2id parameters: the login target is derived from their cost.
    A2_M=$(sed -n 's/^argon2_memory_kib = \([0-9]*\)$/\1/p' <<<"$eff")
    A2_T=$(sed -n 's/^argon2_iterations = \([0-9]*\)$/\1/p' <<<"$eff")
    A2_P=$(sed -n 's/^argon2_parallelism = \([0-9]*\)$/\1/p' <<<"$eff")
    [[ -n "$A2_M" && -n "$A2_T" && -n "$A2_P" ]] || die "config check shows no argon2 parameters"
    say "browser:     user $BENCH_EMAIL (argon2id m=$A2_M t=$A2_T p=$A2_P); client $WEB_ID (confidential, --skip-consent, redirect $WEB_REDIRECT)"
fi
say ""

# ---- 5. scenarios ----------------------------------------------------------------------------------------
declare -A R_RPS R_P50 R_P99 R_ERR R_RSS R_SCPU R_LCPU R_OK
FAILED=0
ARGON2_MS=""
ARGON2_MAX=""
TARGET_LOGIN_RATE=""

scenario_duration() { if [[ "$1" == login ]]; then echo "$LOGIN_DURATION"; else echo "$DURATION"; fi; }
kv() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1"; }
now_s() { date +%s.%N; }

run_wrk() { # name duration out
    local name=$1 d=$2 out=$3 script args=()
    script="$BENCH_DIR/$name.lua"
    [[ "$name" == client_credentials ]] && args=(-- "$CLIENT_ID" "$CLIENT_SECRET")
    timeout --signal=INT --kill-after=10 $((d + 30)) \
        taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${d}s" --latency \
        -s "$script" "$URL" "${args[@]}" >"$out" 2>&1
}

# examples/loadgen.rs in the background; it does its own warm-up (after minting, for refresh) and
# creates $mark when the measured window starts. Secrets go through the environment, not argv, and
# values are passed as --opt=value (a random client id may start with "-").
start_loadgen() { # mode out mark
    local mode=$1 out=$2 mark=$3 extra=() d
    d=$(scenario_duration "$mode")
    [[ "$mode" == refresh ]] && extra=(--browsers="$MINT_BROWSERS")
    [[ "$mode" == login && "$PROBE_EVERY" != 0 ]] && extra=(--probe-every="$PROBE_EVERY"
        --probe-cpu="$SERVER_CPU" --probe-n="$PROBE_N" --probe-memory-kib="$A2_M"
        --probe-iterations="$A2_T" --probe-parallelism="$A2_P" --probe-agree="$PROBE_AGREE"
        --side-every-ms="$SIDE_EVERY_MS")
    rm -f "$mark"
    LOADGEN_CLIENT_SECRET=$WEB_SECRET LOADGEN_PASSWORD=$BENCH_PASSWORD \
        timeout --signal=INT --kill-after=10 $((2 * d + WARMUP + 120)) \
        taskset -c "$LOAD_CPU" "$LOADGEN" "$mode" --url="$URL" --client-id="$WEB_ID" \
        --redirect-uri="$WEB_REDIRECT" --email="$BENCH_EMAIL" --workers="$WORKERS" \
        --duration="$d" --warmup="$WARMUP" --mark="$mark" "${extra[@]}" >"$out" 2>&1 &
    LG_PID=$!
}

# The mean of ARGON2_N argon2id verifications back to back at the server's parameters, on the server's core (ms).
argon2_ms() {
    local out line
    out=$(timeout 300 taskset -c "$SERVER_CPU" "$LOADGEN" argon2 --memory-kib "$A2_M" \
        --iterations "$A2_T" --parallelism "$A2_P" --n "$ARGON2_N" 2>&1) ||
        { printf '%s\n' "$out" >&2; die "the argon2 measurement failed"; }
    printf '%s\n' "$out" | grep -v '^BENCH' | sed 's/^/    /' >&2
    line=$(grep '^BENCH ' <<<"$out")
    # The mean: verifications back to back over their total time, the rate the core sustained.
    kv "$line" verify_ms
}

# Sets ARGON2_MS, ARGON2_MAX (sign-ins/s) and TARGET_LOGIN_RATE from one verification's cost in ms.
login_bound() {
    ARGON2_MS=$1
    ARGON2_MAX=$(awk -v ms="$1" 'BEGIN { printf "%.2f", 1000 / ms }')
    TARGET_LOGIN_RATE=$(awk -v m="$ARGON2_MAX" -v f="$TARGET_LOGIN_FRACTION" 'BEGIN { printf "%.1f", m * f }')
}

for sc in "${SELECTED[@]}"; do
    say "-- scenario $sc"
    case "$sc" in client_credentials | jwks) kind=wrk ;; *) kind=loadgen ;; esac
    if [[ "$kind" == wrk ]] && ((WARMUP > 0)); then
        run_wrk "$sc" "$WARMUP" "$TMP/wrk-$sc-warmup.txt" || true
    fi
    server_alive || { say "$sc: the server died during warm-up"; FAILED=1; R_OK[$sc]=DIED; break; }

    if [[ "$sc" == login ]]; then
        # What one sign-in costs the server: one argon2id verification at its parameters, timed on the
        # server's core while the server idles, before the run and again after it (a VM's speed drifts
        # by a few percent within minutes). 1 / cost = sign-ins/s one core can do at most.
        A2_BEFORE=$(argon2_ms)
        login_bound "$A2_BEFORE"
        say "    login target (before the run): ${TARGET_LOGIN_FRACTION} x $ARGON2_MAX = $TARGET_LOGIN_RATE flows/s"
    fi

    out="$TMP/$kind-$sc.txt"
    run_rc=0
    if [[ "$kind" == wrk ]]; then
        p0=$(proc_ticks "$SERVER_PID"); c0=$(proc_ctxsw "$SERVER_PID"); read -r sb0 st0 < <(cpu_ticks "$SERVER_CPU"); read -r lb0 lt0 < <(cpu_ticks "$LOAD_CPU")
        if [[ "$PERF" == 1 ]]; then
            perf record -F "$PERF_FREQ" -g -p "$SERVER_PID" -o "$TMP/perf-$sc.data" -- sleep "$DURATION" \
                >"$TMP/perf-$sc.log" 2>&1 &
            PERF_PID=$!
        fi
        run_wrk "$sc" "$DURATION" "$out" || run_rc=$?
        read -r sb1 st1 < <(cpu_ticks "$SERVER_CPU"); read -r lb1 lt1 < <(cpu_ticks "$LOAD_CPU")
    else
        mark="$TMP/loadgen-$sc.measuring"
        start_loadgen "$sc" "$out" "$mark"
        # Set-up (refresh: minting through the real flow) and warm-up happen before the mark appears.
        while [[ ! -e "$mark" ]] && kill -0 "$LG_PID" 2>/dev/null; do sleep 0.02; done
        t0=$(now_s)
        p0=$(proc_ticks "$SERVER_PID"); c0=$(proc_ctxsw "$SERVER_PID"); read -r sb0 st0 < <(cpu_ticks "$SERVER_CPU"); read -r lb0 lt0 < <(cpu_ticks "$LOAD_CPU")
        if [[ "$PERF" == 1 && -e "$mark" ]]; then
            perf record -F "$PERF_FREQ" -g -p "$SERVER_PID" -o "$TMP/perf-$sc.data" -- sleep "$(scenario_duration "$sc")" \
                >"$TMP/perf-$sc.log" 2>&1 &
            PERF_PID=$!
        fi
        wait "$LG_PID" || run_rc=$?
        LG_PID=""
        t1=$(now_s)
        read -r sb1 st1 < <(cpu_ticks "$SERVER_CPU"); read -r lb1 lt1 < <(cpu_ticks "$LOAD_CPU")
    fi
    # Server ticks now, before waiting for perf (which may outlive the load by a moment).
    server_alive && p1=$(proc_ticks "$SERVER_PID") && c1=$(proc_ctxsw "$SERVER_PID")
    if [[ -n "$PERF_PID" ]]; then
        wait "$PERF_PID" || true
        PERF_PID=""
    fi
    sed 's/^/    /' "$out" | grep -v '^    BENCH' || true

    if ! server_alive; then
        say "$sc: the server died during the run"
        tail -20 "$SERVER_LOG" | sed 's/^/    server: /'
        R_OK[$sc]=DIED; FAILED=1
        break
    fi
    line=$(grep '^BENCH ' "$out" || true)
    if [[ $run_rc -ne 0 || -z "$line" ]]; then
        say "$sc: $([[ "$kind" == wrk ]] && echo wrk || echo loadgen) failed (exit $run_rc)"
        R_OK[$sc]=${kind^^}-FAILED; FAILED=1
        continue
    fi
    R_RPS[$sc]=$(kv "$line" rps)
    R_P50[$sc]=$(kv "$line" p50_ms)
    R_P99[$sc]=$(kv "$line" p99_ms)
    if [[ "$kind" == wrk ]]; then
        elapsed=$(kv "$line" duration_s)
        non200=$(kv "$line" non200)
        sock=$(($(kv "$line" connect_err) + $(kv "$line" read_err) + $(kv "$line" write_err) + $(kv "$line" timeout_err)))
    else
        elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        non200=$(($(kv "$line" http_errors) + $(kv "$line" flow_errors)))
        sock=$(kv "$line" io_errors)
    fi
    R_ERR[$sc]="$non200/$sock"
    R_RSS[$sc]=$(rss_mib "$SERVER_PID")
    hz=$(getconf CLK_TCK)
    R_SCPU[$sc]=$(awk -v a="$p0" -v b="$p1" -v hz="$hz" -v s="$elapsed" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }')
    R_LCPU[$sc]=$(awk -v a="$lb0" -v b="$lb1" -v c="$lt0" -v d="$lt1" 'BEGIN { printf "%.0f", (d > c) ? (b - a) / (d - c) * 100 : 0 }')
    core_busy=$(awk -v a="$sb0" -v b="$sb1" -v c="$st0" -v d="$st1" 'BEGIN { printf "%.0f", (d > c) ? (b - a) / (d - c) * 100 : 0 }')
    # Per request (per flow for login); "-" when threads that exited took their counts with them.
    ops=$(awk -v r="${R_RPS[$sc]}" -v s="$elapsed" 'BEGIN { printf "%.0f", r * s }')
    # A paired login run also pauses for its probes: count the flows it says completed since its mark.
    paired=$(kv "$line" flows_since_mark)
    [[ -n "$paired" ]] && ops=$paired
    ctxsw=$(awk -v a="$c0" -v b="$c1" -v n="$ops" 'BEGIN { if (n > 0 && b >= a) printf "%.1f", (b - a) / n; else print "-" }')
    if [[ "$non200" != 0 || "$sock" != 0 ]]; then
        R_OK[$sc]=ERRORS; FAILED=1
        if [[ "$kind" == wrk ]]; then
            bad=$(sed -n 's/^BENCH_FIRST_BAD //p' "$out")
            [[ -n "$bad" ]] && say "    first non-200: $bad"
        fi
    else
        R_OK[$sc]=ok
    fi
    if [[ "$PERF" == 1 && -s "$TMP/perf-$sc.data" ]]; then
        say "    perf (server, self time; perf itself costs a few percent of the figures above):"
        perf report -i "$TMP/perf-$sc.data" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v -e '^#' -e '^$' | sed -n '1,12s/^/      /p' || true
        perf report -i "$TMP/perf-$sc.data" --stdio --no-children --sort symbol -g none 2>/dev/null |
            grep -v -e '^#' -e '^$' | sed 's/ *$//' | cut -c1-150 | sed -n "1,${PERF_TOP:-40}s/^/      /p" || true
    fi
    say "$sc: rps=${R_RPS[$sc]} p50_ms=${R_P50[$sc]} p99_ms=${R_P99[$sc]} non2xx_or_non200=$non200 socket_errors=$sock vmrss_mib=${R_RSS[$sc]} server_cpu=${R_SCPU[$sc]}% cpu${SERVER_CPU}_busy=${core_busy}% cpu${LOAD_CPU}_busy=${R_LCPU[$sc]}%$([[ "$kind" == loadgen ]] && echo " loadgen_cpu=$(kv "$line" loadgen_cpu_pct)%") ctxsw_per_op=$ctxsw"
    # Something else on the server's core (a compile, a test) takes CPU from the server: say so.
    other=$((core_busy - R_SCPU[$sc]))
    if [[ -n "$paired" ]]; then
        say "    (cpu and context switches span the probe pauses too: the server idles while argon2id is timed on cpu$SERVER_CPU)"
    elif ((other > 10)); then
        say "    WARNING: something else used about ${other}% of cpu$SERVER_CPU during this run; the figures are low"
    fi
    if [[ "$sc" == refresh ]]; then
        # Durability: every rotation the load generator saw answered must be committed in SQLite (the
        # presented token marked used, its successor stored). In-flight requests abandoned at the end
        # of the window may add a few more used tokens than acknowledged rotations.
        acked=$(($(kv "$line" completed) + $(kv "$line" outside_ok)))
        if [[ "$BACKEND" == postgres ]]; then
            db_counts=$(psql -h 127.0.0.1 -U postgres -d "$PG_DB" -Atc "select (select count(*) from refresh_tokens where used_at is not null), (select count(*) from refresh_tokens), (select count(*) from refresh_families)" | tr '|' ' ' || true)
        else
        db_counts=$(python3 - "$TMP/data/custos.db" <<'PY' || true
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
used = c.execute("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL").fetchone()[0]
total = c.execute("SELECT count(*) FROM refresh_tokens").fetchone()[0]
fams = c.execute("SELECT count(*) FROM refresh_families").fetchone()[0]
print(used, total, fams)
PY
        )
        fi
        read -r db_used db_total db_fams <<<"${db_counts:-- - -}"
        if [[ "$db_used" =~ ^[0-9]+$ ]] && ((db_used >= acked)); then dur=ok; else dur=MISMATCH; FAILED=1; fi
        say "    durability: $acked rotations answered 200 (incl. warm-up); the $BACKEND database holds $db_used used tokens, $db_total tokens, $db_fams families -> $dur"
    fi
    if [[ "$sc" == login && -n "$ARGON2_MAX" ]]; then
        A2_AFTER=$(argon2_ms)
        login_bound "$(awk -v a="$A2_BEFORE" -v b="$A2_AFTER" 'BEGIN { printf "%.3f", (a + b) / 2 }')"
        say "    argon2id mean verification before the run $A2_BEFORE ms, after it $A2_AFTER ms: their average, $ARGON2_MS ms, allows $ARGON2_MAX/s"
        unpaired=$(awk -v r="${R_RPS[$sc]}" -v m="$ARGON2_MAX" 'BEGIN { printf "%.1f%%", r / m * 100 }')
        pbound=$(kv "$line" bound_per_s)
        if [[ -n "$pbound" ]]; then
            # The verdict uses the paired bound: the probes taken between the stretches of load.
            login_bound "$(awk -v b="$pbound" 'BEGIN { printf "%.3f", 1000 / b }')"
            say "    login: $(awk -v r="${R_RPS[$sc]}" -v m="$ARGON2_MAX" -v t="$TARGET_LOGIN_RATE" 'BEGIN { printf "%.1f flows/s = %.1f%% of the paired argon2id bound %.1f/s (target %.1f/s = %s of it)", r, r / m * 100, m, t, "'"$TARGET_LOGIN_FRACTION"'" }'); against the before/after bound alone: $unpaired; against the probes' medians: $(kv "$line" ratio_median_pct)%"
        else
            say "    login: $(awk -v r="${R_RPS[$sc]}" -v m="$ARGON2_MAX" -v t="$TARGET_LOGIN_RATE" 'BEGIN { printf "%.1f flows/s = %.1f%% of the argon2id bound %.1f/s (target %.1f/s = %s of it)", r, r / m * 100, m, t, "'"$TARGET_LOGIN_FRACTION"'" }') (no probes: PROBE_EVERY=0)"
        fi
    fi
    say ""
done

server_alive || { [[ $FAILED == 1 ]] || say "the server is not running at the end"; FAILED=1; }
FINAL_RSS=$(server_alive && rss_mib "$SERVER_PID" || echo "-")
PEAK_RSS=$(server_alive && hwm_mib "$SERVER_PID" || echo "-")

# ---- 6. summary ----------------------------------------------------------------------------------------
MISSED=0
VERDICT=""
verdict() { # value op target -> VERDICT (met | MISSED | -); sets MISSED=1 on a miss
    local v=$1 op=$2 t=$3
    VERDICT="-"
    [[ "$v" =~ ^[0-9.]+$ && "$t" =~ ^[0-9.]+$ ]] || return 0
    if awk -v v="$v" -v t="$t" -v op="$op" 'BEGIN { exit !(op == ">=" ? v >= t : v <= t) }'; then
        VERDICT=met
    else
        VERDICT=MISSED; MISSED=1
    fi
}

say "== summary (alg=$ALG, server on cpu$SERVER_CPU, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on cpu$LOAD_CPU$([[ "$USE_LOADGEN" == 1 ]] && echo ", loadgen $WORKERS workers")) =="
printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' \
    measure value p50_ms p99_ms non200/sockerr rss_mib srv_cpu target verdict
t="<=${TARGET_STARTUP_MS}"; verdict "$STARTUP_MS" "<=" "$TARGET_STARTUP_MS"; v=$VERDICT
printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' "startup_to_first_200_ms" "$STARTUP_MS" - - - - - "$t" "$v"
t="<=${TARGET_IDLE_RSS_MIB}"; verdict "$IDLE_RSS" "<=" "$TARGET_IDLE_RSS_MIB"; v=$VERDICT
printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' "idle_vmrss_mib" "$IDLE_RSS" - - - "$IDLE_RSS" - "$t" "$v"
for sc in "${SELECTED[@]}"; do
    case "$sc" in
        client_credentials) tgt=$([[ "$ALG" == ES256 ]] && echo "$TARGET_CC_RPS" || echo "") ;;
        jwks) tgt=$TARGET_JWKS_RPS ;;
        refresh) tgt=$TARGET_REFRESH_RPS ;;
        login) tgt=$TARGET_LOGIN_RATE ;;
    esac
    label="$sc req/s"
    [[ "$sc" == login ]] && label="login flows/s"
    if [[ "$sc" == login && -n "$ARGON2_MS" ]]; then
        printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' "argon2id_verify_ms" "$ARGON2_MS" - - - - - - -
        printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' "argon2id_max_logins/s" "$ARGON2_MAX" - - - - - - -
    fi
    if [[ "${R_OK[$sc]:-}" == ok || "${R_OK[$sc]:-}" == ERRORS ]]; then
        v="-"
        if [[ -n "$tgt" ]]; then verdict "${R_RPS[$sc]}" ">=" "$tgt"; v=$VERDICT; fi
        [[ "${R_OK[$sc]}" == ERRORS ]] && v="ERRORS"
    else
        v=${R_OK[$sc]:-not-run}
    fi
    printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' "$label" "${R_RPS[$sc]:--}" \
        "${R_P50[$sc]:--}" "${R_P99[$sc]:--}" "${R_ERR[$sc]:--}" "${R_RSS[$sc]:--}" \
        "${R_SCPU[$sc]:+${R_SCPU[$sc]}%}" "${tgt:+>=$tgt}" "$v"
done
say "final vmrss_mib=$FINAL_RSS peak (VmHWM) mib=$PEAK_RSS; loadavg now $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -s "$SERVER_LOG" ]] && grep -qiE 'warn|error|panic' "$SERVER_LOG"; then
    say "server log has warnings/errors (last 5 lines):"
    grep -iE 'warn|error|panic' "$SERVER_LOG" | tail -5 | sed 's/^/    /'
fi

if [[ $FAILED != 0 ]]; then
    say "RESULT: FAILED (the server died, or a scenario had errors)"
    exit 1
fi
if [[ $MISSED != 0 ]]; then
    say "RESULT: ok, but a target was missed"
    [[ "$STRICT" == 1 ]] && exit 3
    exit 0
fi
say "RESULT: ok, all targets met"
