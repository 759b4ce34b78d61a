"""Shared transcodes for what browsers cannot play: when (plan), how (command), and the ffmpeg process
as a hub upstream (upstream)."""
