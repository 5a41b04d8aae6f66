"""reenact: per-subject video reenactment and motion transfer."""

__version__ = "0.1.0"
