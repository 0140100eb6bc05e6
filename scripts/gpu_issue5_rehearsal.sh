#!/usr/bin/env bash
# A rehearsal of issue 5's device call without a GPU: runs
# scripts/gpu_issue5.sh itself (check, benchmark, profile, packing of $OUT)
# as the device tool would, with the programs' emulated builds
# (KVC_GPU_PROGRAMS=emu: the same kvc-gpu-pipeline code, its kernels run by
# kvc's GPU emulator) and stand-ins for nvidia-smi, compute-sanitizer and
# ncu (scripts/gpu_rehearsal/), at short lengths and on a few variants.
# What it finds broken (a script's flow, its budget arithmetic, a variant
# name that no longer exists, the programs' arguments, a report that does
# not render, more files in $OUT than the tool returns) would otherwise
# cost the one GPU run a session gets. Its times and its report mean
# nothing and stay in WORKDIR.
#
#   scripts/gpu_issue5_rehearsal.sh WORKDIR
#
# WORKDIR holds the artifacts of scripts/gpu_attention_build.sh (the full
# build, with its emulator objects) in WORKDIR/artifacts, as
# scripts/gpu_programs_dry_run.sh leaves them; the rehearsal configures and
# builds its own WORKDIR/rehearsal/build through the scripts. Needs the CUDA
# toolkit (CUDA_HOME) for the configure and KVC_GPU_EMULATOR (default
# build/lib/GPUEmulator/libkvc_gpu_emulator.a). Exits 1 on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:?usage: gpu_issue5_rehearsal.sh WORKDIR}"
say() { echo "gpu_issue5_rehearsal: $*"; }
fail() { say "FAIL: $*"; exit 1; }

export KVC_GPU_EMULATOR="${KVC_GPU_EMULATOR:-$ROOT/build/lib/GPUEmulator/libkvc_gpu_emulator.a}"
[ -f "$KVC_GPU_EMULATOR" ] || fail "no GPU emulator at $KVC_GPU_EMULATOR"
[ -f "$WORK/artifacts/manifest.txt" ] ||
  fail "no $WORK/artifacts/manifest.txt (run scripts/gpu_attention_build.sh)"

REHEARSAL="$WORK/rehearsal"
OUT_DIR="$REHEARSAL/out"
STAGING="$REHEARSAL/kvc-issue5-out"
rm -rf "$OUT_DIR" "$STAGING"
mkdir -p "$OUT_DIR"
LOG="$REHEARSAL/gpu_issue5.log"

# A plain check of three variants (CUDA-core, both tensor-core passes,
# fused combine) at two lengths (the second after the sanitizer runs, with
# too little time, so that its cut is rehearsed too), and
# three benchmark variants, batch 8 before batch 1; the sanitizer runs, the
# append check and the profile's variants are the device call's own. The
# emulator is slower than a GPU, and CI runs this beside other programs:
# the budgets are ~2.7x the device call's, so that nothing is cut.
CHECK_ONLY="kf16_vf16_r128_b8_h16x2_d128,k2c32_v2t32_r128_b8_h16x4_d128_mma_vmma\$,k2c32_v2t32_r128_b8_h16x4_d128_fused"
BENCH_ONLY="bench_k2c32_v2t32_r128_b1_h32x8_d128\$,bench_k2c32_v2t32_r128_b1_h32x8_d128_mma_vmma_fused\$,bench_k2c128_v2t128_r128_b8_h32x8_d128_p128_mma_vmma_l2bulk_ks2_vs2\$"
start=$SECONDS
(
  cd "$ROOT" &&
  env PATH="$ROOT/scripts/gpu_rehearsal:$PATH" \
    OUT="$OUT_DIR" KVC_GPU_ISSUE5_STAGING="$STAGING" \
    KVC_GPU_PROGRAMS=emu \
    KVC_ATTENTION_ARTIFACTS="$WORK/artifacts" \
    KVC_GPU_CHECK_BUILD_DIR="$REHEARSAL/build" \
    COMPUTE_SANITIZER="$ROOT/scripts/gpu_rehearsal/compute-sanitizer" \
    NCU="$ROOT/scripts/gpu_rehearsal/ncu" \
    KVC_GPU_CHECK_ONLY="$CHECK_ONLY" \
    KVC_GPU_BENCH_ONLY="$BENCH_ONLY" \
    KVC_GPU_ISSUE5_BUDGET=1500 KVC_GPU_CHECK_SHARE=900 \
    KVC_GPU_PROFILE_SHARE=300 \
    KVC_GPU_BENCH_REPS=2 KVC_GPU_BENCH_BATCHES=8,1 \
    KVC_GPU_ISSUE5_CHECK_LENGTHS="300 16384" KVC_GPU_CHECK_MORE_SECONDS=20 \
    KVC_GPU_CHECK_LONG=500 \
    KVC_GPU_ISSUE5_BENCH_LENGTHS=128 \
    KVC_GPU_ISSUE5_PROFILE_LENGTH=128 KVC_GPU_PROFILE_ONE_LENGTH=1 \
    scripts/gpu_issue5.sh
) > "$LOG" 2>&1
status=$?
say "scripts/gpu_issue5.sh exited with $status after $((SECONDS - start)) s (log: $LOG)"
if [ "$status" -ne 0 ]; then
  cat "$LOG"
  fail "the device call's script failed"
fi

# What the device tool would bring back: at most 8 files, these four.
mapfile -t files < <(cd "$OUT_DIR" && find . -type f | sed 's|^\./||' | sort)
[ "${#files[@]}" -le 8 ] || fail "$OUT_DIR holds ${#files[@]} files (the tool returns 8)"
for name in gpu-issue5.tgz gpu_attention_check.log gpu_attention_bench.log; do
  [ -f "$OUT_DIR/$name" ] || fail "no $name in \$OUT"
done
report="$(ls "$OUT_DIR"/gpu-attention-*.md 2>/dev/null | head -n1)"
[ -n "$report" ] || fail "no gpu-attention-<date>.md in \$OUT"

# The check: its plain, append and sanitizer runs all counted, none failed.
check_log="$OUT_DIR/gpu_attention_check.log"
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$check_log" | tail -n1)"
[ "$summary" = "$(tail -n1 "$check_log")" ] || fail "the check's log does not end with its summary"
append_variants="$(wc -l < "$WORK/artifacts/append/append_manifest.txt")"
# The device call's long-run variants, at 500 here: each name one row.
long_names="$(sed -nE 's/^gpu_attention_check: long run: (.*) at S = 500$/\1/p' "$check_log")"
[ -n "$long_names" ] || fail "check: no long run"
IFS=, read -r -a long_list <<< "$long_names"
for name in "${long_list[@]}"; do
  rows="$(grep -cE "^\| ${name%\$} \| 500 \| .* \| PASS \|$" "$check_log")"
  [ "$rows" -eq 1 ] || fail "check: $rows passing long-run rows of ${name%\$}"
done
# The second length: 20 s are too few for the three variants at 16384 in
# the emulator (19 s at 4096 on 2 cores, 9 s at 300), so the budget cuts
# that run, which counts the rows it finished and not the cut, as a short
# share would on the GPU.
more_rows="$(grep -cE '^\| [^|]+ \| 16384 \| .* \| PASS \|$' "$check_log")"
cut="$(grep -E 'plain run at S = 16384: the time budget stopped it after' "$check_log")"
if [ -n "$cut" ]; then
  grep -qF "after $more_rows rows (0 failed; counted, the cut is not)" <<< "$cut" ||
    fail "check: '$cut' with $more_rows passing rows at 16384"
else
  [ "$more_rows" -eq 3 ] || fail "check: the run at 16384 was not cut and passed $more_rows of 3 rows"
  say "the run at 16384 finished in 20 s: the cut path was not taken"
fi
# 3 variants at the first length, those the second finished, every append
# variant, 6 sanitizer runs, the long run.
expected=$((3 + more_rows + append_variants + 6 + ${#long_list[@]}))
[ "$summary" = "$expected passed, 0 failed" ] ||
  fail "check: '$summary', expected '$expected passed, 0 failed'"
clean="$(grep -c ': clean$' "$check_log")"
[ "$clean" -eq 6 ] || fail "check: $clean sanitizer runs clean, expected 6"

# The benchmark: every selected row measured, the report rendered.
unpacked="$REHEARSAL/unpacked"
rm -rf "$unpacked" && mkdir -p "$unpacked"
tar xzf "$OUT_DIR/gpu-issue5.tgz" -C "$unpacked" || fail "gpu-issue5.tgz does not unpack"
packed="$unpacked/$(basename "$STAGING")"
kvc_json="$(ls "$packed"/gpu-attention-*-kvc.json 2>/dev/null | head -n1)"
[ -n "$kvc_json" ] || fail "no kvc JSON in gpu-issue5.tgz"
python3 - "$kvc_json" "$BENCH_ONLY" <<'EOF' || fail "the benchmark's JSON"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
wanted = [name.rstrip("$") for name in sys.argv[2].split(",")]
names = sorted(r["name"] for r in rows)
assert names == sorted(wanted), f"rows {names}, expected {sorted(wanted)}"
order = [r["batch"] for r in rows]
assert order == sorted(order, reverse=True), f"batches in the order {order}"
bad = [r["name"] for r in rows
       if not (r["ok"] and r["gpu_us_median"] > 0
               and r["append_gpu_us_per_step"] > 0)]
assert not bad, f"rows without a measurement: {bad}"
EOF
grep -q "^## Targets" "$report" || fail "the report has no targets section"
grep -q "kvc rehearsal stand-in" "$report" ||
  fail "the report does not name the stand-in device"

# The profile: a report per default variant, each from a run that passed;
# 7 for its 8 entries, as every one runs at 128 here
# (KVC_GPU_PROFILE_ONE_LENGTH) and two differ only in their lengths.
profiles=("$packed"/ncu-*-S128.txt)
[ "${#profiles[@]}" -eq 7 ] && [ -f "${profiles[0]}" ] ||
  fail "${#profiles[@]} profile reports, expected 7"
for profile in "${profiles[@]}"; do
  grep -q "^1 passed, 0 failed$" "$profile" || fail "$(basename "$profile"): no passing run"
done
# The profile's table in the report: the stand-in profiles nothing, so each
# report is named as such (benchmarks/gpu/tests/test_ncu_summary.py checks
# the table's figures on a real ncu report).
grep -q "^## Profile (Nsight Compute)$" "$report" ||
  fail "the report has no profile section"
unprofiled="$(grep -c '^No kernel profiled in .*ncu-.*-S128\.txt' "$report")"
[ "$unprofiled" -eq 7 ] || fail "the report's profile section names $unprofiled of 7 reports"
[ -f "$packed/ncu-summary.md" ] || fail "no ncu-summary.md in gpu-issue5.tgz"
for tool in memcheck racecheck synccheck initcheck append_memcheck append_racecheck; do
  [ -f "$packed/sanitizer_$tool.log" ] || fail "no sanitizer_$tool.log in gpu-issue5.tgz"
done
# What the next session files from the call: scripts/gpu_issue5_collect.sh
# into a results directory of its own (no SDPA JSON here: PyTorch has no
# CUDA device), and it refuses to write over them a second time.
collected="$REHEARSAL/results"
rm -rf "$collected"
"$ROOT/scripts/gpu_issue5_collect.sh" --results "$collected" "$OUT_DIR" \
  > "$REHEARSAL/collect.log" 2>&1 || { cat "$REHEARSAL/collect.log"; fail "gpu_issue5_collect.sh"; }
date="$(basename "$report" .md)"
date="${date#gpu-attention-}"
for name in "gpu-attention-$date.md" "gpu-attention-$date-kvc.json" \
    "gpu-check-$date.log" "gpu-bench-$date.log" "gpu-sanitizer-$date.log" \
    "gpu-profile-$date-ncu.txt"; do
  [ -s "$collected/$name" ] || fail "collect: no $name"
done
cmp -s "$collected/gpu-check-$date.log" "$check_log" || fail "collect: the check's log differs"
sections="$(grep -c '^===== bench_' "$collected/gpu-profile-$date-ncu.txt")"
[ "$sections" -eq 7 ] || fail "collect: $sections profile reports in gpu-profile-$date-ncu.txt, expected 7"
sections="$(grep -c '^===== sanitizer_' "$collected/gpu-sanitizer-$date.log")"
[ "$sections" -eq 6 ] || fail "collect: $sections sanitizer logs in gpu-sanitizer-$date.log, expected 6"
if "$ROOT/scripts/gpu_issue5_collect.sh" --results "$collected" "$OUT_DIR" > /dev/null 2>&1; then
  fail "collect: wrote over the files of a first collection"
fi
say "passed: check $summary; ${#files[@]} files in \$OUT; 3 benchmark rows; 7 profiles; collected"
