"""The shipped level generators: a segment VAE (:mod:`.latent`) and a column LM (:mod:`.column_lm`)."""

__all__ = ["latent", "column_lm"]
