#!/usr/bin/env bash
# Custos benchmark: start-up time, idle memory, and throughput/latency of the token endpoint
# (client_credentials) and the JWKS document, with the server pinned to one core and wrk to another.
# See bench/README.md. Everything goes to 127.0.0.1; every step is bounded in time.
#
#   bench/run.sh                                   # ES256, all scenarios, 15 s each
#   ALG=RS256 SCENARIOS=client_credentials bench/run.sh
#   SKIP_BUILD=1 DURATION=30 bench/run.sh
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

# ---- knobs ------------------------------------------------------------------------------------------
ALG=${ALG:-ES256}                       # CUSTOS_ACCESS_TOKEN_ALG: ES256 | RS256 | EdDSA
DURATION=${DURATION:-15}                # seconds per scenario
WARMUP=${WARMUP:-2}                     # seconds of warm-up before each scenario; 0 = none
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}                   # wrk threads
SCENARIOS=${SCENARIOS:-all}             # all | comma/space list of: client_credentials jwks
STARTUP_RUNS=${STARTUP_RUNS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
STRICT=${STRICT:-0}                     # 1: also exit non-zero when a target is missed
KEEP_TMP=${KEEP_TMP:-0}                 # 1: keep the temporary directory (server log, wrk output)
PERF=${PERF:-0}                         # 1: perf-record the server during each measured run
PERF_FREQ=${PERF_FREQ:-999}             # samples/s for PERF=1
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/custos}

# Targets (one server core, 32 connections, 15 s). The client_credentials target is stated for ES256.
TARGET_CC_RPS=${TARGET_CC_RPS:-20000}
TARGET_JWKS_RPS=${TARGET_JWKS_RPS:-50000}
TARGET_IDLE_RSS_MIB=${TARGET_IDLE_RSS_MIB:-20}
TARGET_STARTUP_MS=${TARGET_STARTUP_MS:-50}

ALL_SCENARIOS=(client_credentials jwks)

say() { printf '%s\n' "$*"; }
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 2; }

# ---- arguments ------------------------------------------------------------------------------------
case "$ALG" in ES256 | RS256 | EdDSA) ;; *) die "ALG must be ES256, RS256 or EdDSA (got '$ALG')" ;; esac
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer (seconds)"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer (seconds)"
[[ "$STARTUP_RUNS" =~ ^[1-9][0-9]*$ ]] || die "STARTUP_RUNS must be a positive integer"

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
    log "cargo build --release (SKIP_BUILD=1 skips this)"
    (cd "$ROOT" && cargo build --release --bin custos)
fi
[[ -x "$BIN" ]] || die "no binary at $BIN (build it, or set BIN=)"

# ---- scratch directory, environment, cleanup --------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/custos-bench.XXXXXX")
PIDFILE="$TMP/server.pid"
SERVER_LOG="$TMP/server.log"
SERVER_PID=""
PERF_PID=""

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
    stop_server
    if [[ "$KEEP_TMP" == 1 ]]; then
        log "kept $TMP (server.log, wrk-*.txt)"
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
say ""

# ---- 5. scenarios ----------------------------------------------------------------------------------------
declare -A R_RPS R_P50 R_P99 R_ERR R_RSS R_SCPU R_LCPU R_OK
FAILED=0

kv() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1"; }

run_wrk() { # name duration out
    local name=$1 d=$2 out=$3 script args=()
    script="$BENCH_DIR/$name.lua"
    [[ "$name" == client_credentials ]] && args=(-- "$CLIENT_ID" "$CLIENT_SECRET")
    timeout --signal=INT --kill-after=10 $((d + 30)) \
        taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${d}s" --latency \
        -s "$script" "$URL" "${args[@]}" >"$out" 2>&1
}

for sc in "${SELECTED[@]}"; do
    say "-- scenario $sc"
    if ((WARMUP > 0)); then
        run_wrk "$sc" "$WARMUP" "$TMP/wrk-$sc-warmup.txt" || true
    fi
    server_alive || { say "$sc: the server died during warm-up"; FAILED=1; R_OK[$sc]=DIED; break; }

    p0=$(proc_ticks "$SERVER_PID"); read -r sb0 st0 < <(cpu_ticks "$SERVER_CPU"); read -r lb0 lt0 < <(cpu_ticks "$LOAD_CPU")
    if [[ "$PERF" == 1 ]]; then
        perf record -F "$PERF_FREQ" -g -p "$SERVER_PID" -o "$TMP/perf-$sc.data" -- sleep "$DURATION" \
            >"$TMP/perf-$sc.log" 2>&1 &
        PERF_PID=$!
    fi
    wrk_rc=0
    run_wrk "$sc" "$DURATION" "$TMP/wrk-$sc.txt" || wrk_rc=$?
    if [[ -n "$PERF_PID" ]]; then
        wait "$PERF_PID" || true
        PERF_PID=""
    fi
    read -r sb1 st1 < <(cpu_ticks "$SERVER_CPU"); read -r lb1 lt1 < <(cpu_ticks "$LOAD_CPU")
    sed 's/^/    /' "$TMP/wrk-$sc.txt" | grep -v '^    BENCH' || true

    if ! server_alive; then
        say "$sc: the server died during the run"
        tail -20 "$SERVER_LOG" | sed 's/^/    server: /'
        R_OK[$sc]=DIED; FAILED=1
        break
    fi
    p1=$(proc_ticks "$SERVER_PID")
    line=$(grep '^BENCH ' "$TMP/wrk-$sc.txt" || true)
    if [[ $wrk_rc -ne 0 || -z "$line" ]]; then
        say "$sc: wrk failed (exit $wrk_rc)"
        R_OK[$sc]=WRK-FAILED; FAILED=1
        continue
    fi
    elapsed=$(kv "$line" duration_s)
    R_RPS[$sc]=$(kv "$line" rps)
    R_P50[$sc]=$(kv "$line" p50_ms)
    R_P99[$sc]=$(kv "$line" p99_ms)
    non200=$(kv "$line" non200)
    sock=$(($(kv "$line" connect_err) + $(kv "$line" read_err) + $(kv "$line" write_err) + $(kv "$line" timeout_err)))
    R_ERR[$sc]="$non200/$sock"
    R_RSS[$sc]=$(rss_mib "$SERVER_PID")
    hz=$(getconf CLK_TCK)
    R_SCPU[$sc]=$(awk -v a="$p0" -v b="$p1" -v hz="$hz" -v s="$elapsed" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }')
    R_LCPU[$sc]=$(awk -v a="$lb0" -v b="$lb1" -v c="$lt0" -v d="$lt1" 'BEGIN { printf "%.0f", (d > c) ? (b - a) / (d - c) * 100 : 0 }')
    core_busy=$(awk -v a="$sb0" -v b="$sb1" -v c="$st0" -v d="$st1" 'BEGIN { printf "%.0f", (d > c) ? (b - a) / (d - c) * 100 : 0 }')
    if [[ "$non200" != 0 || "$sock" != 0 ]]; then
        R_OK[$sc]=ERRORS; FAILED=1
        bad=$(sed -n 's/^BENCH_FIRST_BAD //p' "$TMP/wrk-$sc.txt")
        [[ -n "$bad" ]] && say "    first non-200: $bad"
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
    say "$sc: rps=${R_RPS[$sc]} p50_ms=${R_P50[$sc]} p99_ms=${R_P99[$sc]} non2xx_or_non200=$non200 socket_errors=$sock vmrss_mib=${R_RSS[$sc]} server_cpu=${R_SCPU[$sc]}% cpu${SERVER_CPU}_busy=${core_busy}% cpu${LOAD_CPU}_busy=${R_LCPU[$sc]}%"
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

say "== summary (alg=$ALG, server on cpu$SERVER_CPU, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on cpu$LOAD_CPU) =="
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
    esac
    if [[ "${R_OK[$sc]:-}" == ok || "${R_OK[$sc]:-}" == ERRORS ]]; then
        v="-"
        if [[ -n "$tgt" ]]; then verdict "${R_RPS[$sc]}" ">=" "$tgt"; v=$VERDICT; fi
        [[ "${R_OK[$sc]}" == ERRORS ]] && v="ERRORS"
    else
        v=${R_OK[$sc]:-not-run}
    fi
    printf '%-30s %12s %10s %10s %14s %10s %9s %12s %8s\n' "$sc req/s" "${R_RPS[$sc]:--}" \
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
