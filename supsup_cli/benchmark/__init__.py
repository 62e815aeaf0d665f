"""benchmark: continual-learning experiments end to end (experiment), their baselines, evaluation,
metrics, the paper's figures, speed measurements and the store of evaluated checkpoints.

May import every layer but the command line's commands (the top layer, with the command line).
Nothing is imported here, so that the command line can name these modules without loading torch.
"""
