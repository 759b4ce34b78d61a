"""Evidence recording: a hub reader writing fragmented MP4 segments without re-encoding, their index
(a hash chain per camera), playback lists, exports with a signed manifest, and verification.

It reads the stream core (``streams``) and stores through ``storage``; it imports nothing above them.
"""

from recording.settings import RecordingSettings

__all__ = ["RecordingSettings"]
