#!/usr/bin/env bash
# SM and CARE on the fake env: mtrl's own training (agent.encoders=separate, the defaults) against the reference's
# (the options experiment=sm_mt10/care_mt10 set), same seed, the budget of tests/test_rl_archs.py's learning test.
# Run from the repository root: [SEEDS="1 2"] [ARCHS="sm care"] bash benchmarks/results/rl/reference_training_fake/run.sh
set -euo pipefail
out=benchmarks/results/rl/reference_training_fake
declare -A steps=([sm]=2500 [care]=4500) every=([sm]=250 [care]=500)
for seed in ${SEEDS:-1}; do
  for arch in ${ARCHS:-sm care}; do
    ref="agent.encoders=reference agent.encoder_tau=0.05 agent.target_task_encoder=online"
    [ "$arch" = care ] && ref="$ref agent.actor_attention=frozen"
    for mode in separate reference; do
      dir=$out/${arch}_${mode}/seed_$seed
      [ -f "$dir/eval.jsonl" ] && continue
      extra=""; [ "$mode" = reference ] && extra=$ref
      python -m mtrl.train agent.arch=$arch agent.init=xavier env=fake env.num_tasks=2 agent.hidden_dim=64 \
        agent.num_layers=2 agent.batch_size_per_task=32 train.warmup_steps_per_task=200 seed=$seed \
        train.steps_per_task=${steps[$arch]} train.eval_every=${every[$arch]} env.eval_episodes=5 \
        agent.aggregator=imgrad train.log_every=500 train.torch_threads=1 train.checkpoint_every=1000000 \
        logger=none hydra.run.dir=$dir $extra > /dev/null 2>&1
      echo "$arch $mode seed $seed: $(python -c "import json,sys; print([round(json.loads(l)['success_rate'],2) for l in open('$dir/eval.jsonl')])")"
    done
  done
done
