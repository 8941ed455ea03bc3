"""mtrl: multi-task reinforcement learning and multi-task learning with pluggable gradient aggregators."""

__version__ = "0.1.0"
