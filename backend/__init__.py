"""causalwatch backend: runs, trainer processes, metrics store, red flags, live streams."""

__version__ = "0.1.0"
