#!/usr/bin/env bash
# Re-runs everything docs/findings.md reports, and resumes where it stopped: run it again after a
# crash, a reboot or a killed session (a finished run is never trained again; a killed run is
# queued again and trained from its start).
#
#   bash studies/findings.sh                   # DATA=../shared/datasets/bsds500 RUNS=../findings-runs
#   nohup bash studies/findings.sh > findings.log 2>&1 &
#   SEEDS=12 bash studies/findings.sh          # more seeds per arm: adds them to every confirmation
#   ONLY="q3 q2" bash studies/findings.sh      # some questions only (curve q1 q2 q3 q4 q6 tables)
#
# The runs, their SQLite storage and the test-split metrics go to RUNS, outside the repository;
# the tables and figures go to RUNS/findings (tables.md) and docs/findings/ (small PNGs).
# Each confirmation runs `ganlab confirm --n-jobs auto`: one single-threaded worker per core.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
DATA="${DATA:-$repo/../shared/datasets/bsds500}"
RUNS="${RUNS:-$repo/../findings-runs}"
SEEDS="${SEEDS:-10}"
ONLY="${ONLY:-curve q3 q2 q4 q6 q1 tables}"
defs="$here/findings"
common=(--runs "$RUNS")
data=(--data "$DATA/train" --val-data "$DATA/val")
failed=0

if [ ! -d "$DATA/train" ] || [ ! -d "$DATA/val" ] || [ ! -d "$DATA/test" ]; then
    echo "findings.sh: $DATA has no train/, val/ and test/ folders; set DATA to the BSDS500 folder" >&2
    exit 2
fi
mkdir -p "$RUNS"

step() {  # a step that fails is reported and the next one runs; the exit code says whether all ran
    echo "== $(date -u +%FT%TZ) $*"
    if ! "$@"; then
        echo "== FAILED: $*"
        failed=1
    fi
}

wanted() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# The budget: the baseline's learning curve over 3 seeds (studies/findings/curve.py)
wanted curve && step python "$defs/curve.py" --data "$DATA" --runs "$RUNS/curve" --png "$repo/docs/findings/curve.png"

# Each question: its study (question 4 searches, the others name fixed arms and search nothing),
# then its confirmation over the seeds (question 4: its best configuration with the leave-one-out
# ablation of its tricks)
for q in q3:q3-weak-d q2:q2-wgan-pixeltcl q4:q4-ganhacks q6:q6-modern q1:q1-adversarial; do
    wanted "${q%%:*}" || continue
    name="${q#*:}"
    search=() top=()
    if [ "$name" = q4-ganhacks ]; then search=(--n-jobs auto) top=(--top 1); fi
    step ganlab study --study "$defs/$name.toml" "${common[@]}" "${data[@]}" "${search[@]}"
    step ganlab confirm "$name" "${common[@]}" "${top[@]}" --seeds "$SEEDS"
done

# The test split, the tables (val and test, every metric), the cross-study comparisons and the figures
if wanted tables; then
    for name in q1-adversarial q2-wgan-pixeltcl q3-weak-d q4-ganhacks q6-modern; do
        step ganlab report "$name" "${common[@]}"
    done
    step python "$defs/tables.py" --runs "$RUNS" --data "$DATA" --docs "$repo/docs/findings"
fi
exit "$failed"
