"""AugMix's successors as batched, per-sample, keyed augmentations (pure functions).

* `randaugment`: RandAugment and TrivialAugment wide as torchvision defines them, and their
  variants without the operations that overlap the test corruptions.
* `prime`: PRIME's max-entropy diffeomorphism, smooth colour and random filter, mixed as PRIME does.
* `pixmix`: PixMix's mixing loop with a given mixing set; `fractals`: procedural fractal pictures
  (a stand-in mixing set, not the paper's).
* `tvops`: the torchvision operations (PIL backend) on uint8 batches, one magnitude per image.

Every function takes uint8 (B, 3, H, W) images on any device and `rng.SampleKeys`; every random
draw comes from `augmix.rng` named streams, so a sample's augmentation does not depend on its batch
(PRIME's `shared_draws` option, the reference's per-call draws, is the one stated exception).
"""
