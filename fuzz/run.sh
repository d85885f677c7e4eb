#!/usr/bin/env bash
# Runs the fuzz targets one after another, each until it has used CPU_MINUTES of CPU
# time, at the lowest priority. A crash is kept in artifacts/<target>/ and fuzzing goes on.
#
#   fuzz/run.sh [CPU_MINUTES] [TARGET...]      (default: 15 minutes, every target)
#
# FUZZ_WALL_SECONDS=N also stops each target after N seconds of wall time (a busy machine).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Its flags are nightly-only;
# RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them. Logs: fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:-15}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(notebook settings analysis convert)
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
tick=$(getconf CLK_TCK)

python3 seeds.py seeds >/dev/null
mkdir -p logs
for t in "${targets[@]}"; do
    # No sanitizer: safe Rust needs none, and it doubles the executions per second;
    # debug assertions catch arithmetic overflow.
    nice -n 19 cargo fuzz build --sanitizer none --debug-assertions --target-dir "$target_dir" "$t"
done

cpu_of() { # user + system seconds of a process
    awk -v t="$tick" '{ sub(/^.*\) /, ""); print int(($12 + $13) / t) }' "/proc/$1/stat" 2>/dev/null || echo 0
}

for t in "${targets[@]}"; do
    bin="$target_dir/x86_64-unknown-linux-gnu/release/$t"
    mkdir -p "corpus/$t" "artifacts/$t"
    used=0
    runs=0
    started=$(date +%s)
    wall=${FUZZ_WALL_SECONDS:-0}
    : >"logs/$t.log"
    # A crash ends a run; a crash on every start (a seed) would loop forever.
    while [ "$used" -lt $((minutes * 60)) ] && [ "$runs" -lt 20 ] &&
        { [ "$wall" -eq 0 ] || [ $(($(date +%s) - started)) -lt "$wall" ]; }; do
        runs=$((runs + 1))
        NB2PIPE_FUZZ_CURRENT="logs/$t.current" nice -n 19 "$bin" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
            -max_len=65536 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
            >>"logs/$t.log" 2>&1 &
        pid=$!
        last=0
        while kill -0 "$pid" 2>/dev/null; do
            now=$(cpu_of "$pid")
            [ "$now" -gt "$last" ] && last=$now
            if [ $((used + last)) -ge $((minutes * 60)) ] ||
                { [ "$wall" -gt 0 ] && [ $(($(date +%s) - started)) -ge "$wall" ]; }; then
                kill -INT "$pid" 2>/dev/null || true
            fi
            sleep 5
        done
        rc=0
        wait "$pid" || rc=$?
        used=$((used + last))
        # Killed by a signal libFuzzer could not handle (a stack overflow): keep the
        # input that was running.
        if [ "$rc" -gt 128 ] && [ "$rc" -ne 130 ] && [ -s "logs/$t.current" ]; then
            cp "logs/$t.current" "artifacts/$t/signal-$((rc - 128))-$(sha1sum <"logs/$t.current" | cut -c1-40)"
            echo "$t: died of signal $((rc - 128)); input kept in artifacts/$t/" >>"logs/$t.log"
        fi
    done
    crashes=$(find "artifacts/$t" -type f | wc -l)
    echo "$t: ${used}s CPU, $(($(date +%s) - started))s wall, $runs run(s), corpus $(find "corpus/$t" -type f | wc -l) inputs, $crashes artifact(s)"
done
