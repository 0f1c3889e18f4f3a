"""Generic training: the runner (:mod:`.runner`: train a recipe into a run folder with its trainer,
restore a run, the one rollout helper) and run-folder state I/O (:mod:`.checkpoint`). The trainers
themselves are plugins reached through :mod:`rlcreate.trainers`: SB3 PPO / MaskablePPO
(:mod:`rlcreate.sb3`) and TRL GRPO + LoRA (:mod:`rlcreate.trl`)."""
