#!/bin/sh
# A stand-in training script for `slipway demo`: it reads its run config,
# "trains" for a few epochs and writes a model file.
set -eu
echo "run config: ${SLIPWAY_RUN_CONFIG:-none}"
echo "job ${SLIPWAY_JOB_ID} attempt ${SLIPWAY_ATTEMPT} on queue ${SLIPWAY_QUEUE}"
epochs=$(printf '%s' "${SLIPWAY_RUN_CONFIG:-}" | sed -n 's/.*"epochs"[^0-9]*\([0-9][0-9]*\).*/\1/p')
epochs=${epochs:-3}
loss=1000
i=1
while [ "$i" -le "$epochs" ]; do
  loss=$((loss * 6 / 10))
  echo "epoch $i/$epochs loss=0.$(printf '%03d' "$loss")"
  i=$((i + 1))
done
mkdir -p "${SM_MODEL_DIR:-./model}"
echo "weights after $epochs epochs" > "${SM_MODEL_DIR:-./model}/model.txt"
echo "training done; model written to ${SM_MODEL_DIR:-./model}/model.txt"
