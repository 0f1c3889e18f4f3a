"""The TRL trainer: GRPO + LoRA fine-tuning of a domain's causal LM itself (``trainer.algo: grpo``),
in :mod:`.grpo`. Generic code reaches it only through :mod:`rlcreate.trainers`."""
