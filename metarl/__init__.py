"""metarl: fast, reproducible meta-reinforcement learning for simulated robots."""

__version__ = "0.1.0"
