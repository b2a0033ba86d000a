#!/bin/bash
# One participant per SLURM array task. Submit from the folder that gets the logs, with as many tasks as
# participants (line 1 of participants.tsv is the header):
#   mkdir -p logs && sbatch --array=1-$(($(wc -l < /data/bids/participants.tsv) - 1)) slurm-array.sh
# Settings come from the environment of sbatch (passed on to the tasks); unset ones take these defaults:
#   BIDS     raw BIDS dataset with derivatives/fmriprep inside, read-only     (/data/bids)
#   OUT      BIDS-Derivatives output folder                                   (/scratch/$USER/bidsapp)
#   WORK     nipype work folders, one per participant: a resubmitted task resumes
#                                                                             (/scratch/$USER/bidsapp-work)
#   SIF      the Apptainer/Singularity image                                  (/shared/containers/bidsapp-0.1.0.sif)
#   BIDSAPP  the bidsapp command; unset: the image run with apptainer. With bidsapp installed (pip), e.g.
#            BIDS=~/bids OUT=~/out WORK=~/work BIDSAPP=bidsapp sbatch --array=1-20 slurm-array.sh
# All three folders must be on a filesystem the compute nodes share.
#SBATCH --job-name=bidsapp
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --output=logs/bidsapp-%A_%a.out
set -euo pipefail

BIDS=${BIDS:-/data/bids}
OUT=${OUT:-/scratch/$USER/bidsapp}
WORK=${WORK:-/scratch/$USER/bidsapp-work}
SIF=${SIF:-/shared/containers/bidsapp-0.1.0.sif}
mkdir -p "$OUT" "$WORK"

subject=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$BIDS/participants.tsv" | cut -f1)
[ -n "$subject" ] || { echo "no participant on line $((SLURM_ARRAY_TASK_ID + 1)) of $BIDS/participants.tsv" >&2; exit 1; }

if [ -n "${BIDSAPP:-}" ]; then
    read -r -a bidsapp <<<"$BIDSAPP"
else
    # the folders are bound at the same paths inside the container, so the arguments below work for both
    bidsapp=(apptainer run --cleanenv -B "$BIDS:$BIDS:ro" -B "$OUT" -B "$WORK" "$SIF")
fi
"${bidsapp[@]}" "$BIDS" "$OUT" participant --participant-label "$subject" \
    --nprocs "${SLURM_CPUS_PER_TASK:-1}" --work-dir "$WORK/$subject"

# after all tasks (or submit it with --dependency=afterok:<array job id>):
#   apptainer run --cleanenv -B "$BIDS:$BIDS:ro" -B "$OUT" "$SIF" "$BIDS" "$OUT" group
