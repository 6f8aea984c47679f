#!/usr/bin/env bash
# Submit → running latency on a Slurm target, beside sbatch alone, measured
# interleaved on the same private single-node Slurm (scripts/test-env/slurm).
#
#   bench/slurm_latency.sh [BUILD_DIR] [ROUNDS]     (as root; default build, 15)
#
# Per round, one trivial job each way, the job being `date +%s.%N > STAMP`:
#   sbatch:  `sbatch --parsable --export=ALL --wrap ...`: the command's own
#            time (submit → job id) and submit → the job's first instruction
#   sbatch + srun: the same with the command in a job step (`srun date ...`),
#            as amld runs it: what the step launch adds
#   amld:    `aml run submit -q -c cluster --command ...`: the client's time
#            (submit → run id), submit → RUNNING (the run's RUNNING
#            transition time) and submit → first instruction
# Prints medians (and min/max) as a table and writes the same as JSON to
# bench/results/slurm_latency.json.
set -euo pipefail

build=${1:-build}
rounds=${2:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/$build/bin
[[ -x $bin/amld && -x $bin/aml ]] || { echo "build amld and aml in $build first" >&2; exit 1; }

work=$(mktemp -d /tmp/amld-slurm-bench.XXXXXX)
chmod 755 "$work"  # munged (the munge user) must reach the state dir
state=$work/slurm
cleanup() {
  "$bin/aml" --socket "$work/amld.sock" daemon stop >/dev/null 2>&1 || true
  "$root/scripts/test-env/slurm" down "$state" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$root/scripts/test-env/slurm" up "$state" >/dev/null
export SLURM_CONF=$state/slurm.conf
shared=$state/shared/bench
mkdir -p "$shared" "$work/proj"
aml=("$bin/aml" --socket "$work/amld.sock")
"${aml[@]}" daemon start --data-dir "$work/data" >/dev/null
"${aml[@]}" compute create cluster --type slurm --workdir "$shared" >/dev/null
echo "# trivial project" >"$work/proj/README"

now() { date +%s.%N; }
wait_file() { while [[ ! -s $1 ]]; do sleep 0.002; done; }

sbatch_cmd=() sbatch_first=() srun_first=() amld_cmd=() amld_running=() amld_first=()
for ((i = 0; i < rounds; i++)); do
  stamp=$shared/sbatch.$i
  t0=$(now)
  sbatch --parsable --export=ALL -o /dev/null --wrap "date +%s.%N > $stamp" >/dev/null
  t1=$(now)
  wait_file "$stamp"
  sbatch_cmd+=("$(echo "$t1 - $t0" | bc -l)")
  sbatch_first+=("$(echo "$(<"$stamp") - $t0" | bc -l)")

  stamp=$shared/srun.$i
  t0=$(now)
  sbatch --parsable --export=ALL -o /dev/null --wrap "srun sh -c 'date +%s.%N > $stamp'" >/dev/null
  wait_file "$stamp"
  srun_first+=("$(echo "$(<"$stamp") - $t0" | bc -l)")

  stamp=$shared/amld.$i
  t0=$(now)
  id=$("${aml[@]}" run submit -q -c cluster -s "$work/proj" --command "date +%s.%N > $stamp")
  t1=$(now)
  wait_file "$stamp"
  "${aml[@]}" run wait "$id" >/dev/null 2>&1
  amld_cmd+=("$(echo "$t1 - $t0" | bc -l)")
  running=$("${aml[@]}" --output json run show "$id" | /usr/bin/python3 -c '
import json, sys, datetime
run = json.load(sys.stdin)
t = [h["time"] for h in run["history"] if h["status"] == "RUNNING"][0]
print(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())')
  amld_running+=("$(echo "$running - $t0" | bc -l)")
  amld_first+=("$(echo "$(<"$stamp") - $t0" | bc -l)")
done

stats() {  # median min max, in ms
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1*1000} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "%.1f %.1f %.1f", m, v[1], v[NR] }'
}
read -r a1 a2 a3 <<<"$(stats "${sbatch_cmd[@]}")"
read -r b1 b2 b3 <<<"$(stats "${sbatch_first[@]}")"
read -r s1 s2 s3 <<<"$(stats "${srun_first[@]}")"
read -r e1 e2 e3 <<<"$(stats "${amld_cmd[@]}")"
read -r c1 c2 c3 <<<"$(stats "${amld_running[@]}")"
read -r d1 d2 d3 <<<"$(stats "${amld_first[@]}")"
printf '%-44s %10s %10s %10s\n' "figure ($rounds rounds, interleaved)" "median ms" "min" "max"
printf '%-44s %10s %10s %10s\n' "sbatch alone: command (submit -> job id)" "$a1" "$a2" "$a3"
printf '%-44s %10s %10s %10s\n' "sbatch alone: submit -> first instruction" "$b1" "$b2" "$b3"
printf '%-44s %10s %10s %10s\n' "sbatch + srun step: submit -> first instr." "$s1" "$s2" "$s3"
printf '%-44s %10s %10s %10s\n' "amld slurm target: aml run submit -> run id" "$e1" "$e2" "$e3"
printf '%-44s %10s %10s %10s\n' "amld slurm target: submit -> RUNNING" "$c1" "$c2" "$c3"
printf '%-44s %10s %10s %10s\n' "amld slurm target: submit -> first instr." "$d1" "$d2" "$d3"
printf 'ratio (first instruction, amld / sbatch): %.2f\n' "$(echo "$d1 / $b1" | bc -l)"
mkdir -p "$root/bench/results"
cat >"$root/bench/results/slurm_latency.json" <<EOF
{"rounds": $rounds,
 "sbatch_command_ms": {"median": $a1, "min": $a2, "max": $a3},
 "sbatch_first_instruction_ms": {"median": $b1, "min": $b2, "max": $b3},
 "sbatch_srun_first_instruction_ms": {"median": $s1, "min": $s2, "max": $s3},
 "amld_submit_command_ms": {"median": $e1, "min": $e2, "max": $e3},
 "amld_submit_to_running_ms": {"median": $c1, "min": $c2, "max": $c3},
 "amld_submit_to_first_instruction_ms": {"median": $d1, "min": $d2, "max": $d3}}
EOF
