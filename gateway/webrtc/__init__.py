"""WebRTC out: WHEP sessions that pass the camera's H.264 through without re-encoding."""
