"""Trainers: SB3 (:mod:`.sb3`), checkpoints (:mod:`.checkpoint`), run orchestration and the one
rollout helper (:mod:`.runner`), SB3 policies (:mod:`.policies`), TRL GRPO fine-tuning (:mod:`.finetune`)."""

__all__ = ["sb3", "checkpoint", "runner", "policies", "finetune"]
