"""Generic trainers: SB3 (:mod:`.sb3`), checkpoints (:mod:`.checkpoint`), run orchestration and the one
rollout helper (:mod:`.runner`), SB3 policies (:mod:`.policies`). Fine-tuning a causal LM with TRL GRPO
is the text domain's trainer (:mod:`rlcreate.text.finetune`)."""

__all__ = ["sb3", "checkpoint", "runner", "policies"]
