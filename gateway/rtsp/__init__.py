"""RTSP out: the gateway's RTSP server for video walls and decoders (``docs/rtsp.md``)."""
