#!/bin/bash
# One participant per SLURM array task, with the Apptainer/Singularity image.
# Submit with as many tasks as participants:  sbatch --array=1-$(($(wc -l < /data/bids/participants.tsv) - 1)) slurm-array.sh
#SBATCH --job-name=bidsapp
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --output=logs/bidsapp-%A_%a.out
set -euo pipefail

BIDS=/data/bids                                   # raw BIDS with derivatives/fmriprep inside (read-only)
OUT=/scratch/$USER/bidsapp                        # BIDS-Derivatives output
WORK=/scratch/$USER/bidsapp-work                  # nipype cache: a resubmitted task resumes
SIF=/shared/containers/bidsapp-0.1.0.sif
mkdir -p "$OUT" "$WORK" logs

# line 1 of participants.tsv is the header
subject=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$BIDS/participants.tsv" | cut -f1)

apptainer run --cleanenv -B "$BIDS:/data:ro" -B "$OUT:/out" -B "$WORK:/work" "$SIF" \
    /data /out participant --participant-label "$subject" \
    --nprocs "$SLURM_CPUS_PER_TASK" --work-dir "/work/$subject"

# after all tasks:  apptainer run -B "$BIDS:/data:ro" -B "$OUT:/out" "$SIF" /data /out group
