"""Meta-learning: prepared clips and episodes, the training loop, checkpoints, export and the Hub."""
