"""AugMix reproduction: augmentation, corruptions, training, evaluation, pipeline."""
__version__ = "0.1.0"
