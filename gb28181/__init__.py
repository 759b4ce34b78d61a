"""GB/T 28181 devices in: the platform's SIP endpoint (registration, keepalive, catalog, live
INVITE), PS-over-RTP reception as one more upstream of the stream core, and channels as cameras of
the registry. The SIP message (:mod:`gb28181.sip`), digest (:mod:`httpdigest.digest`, shared with RTSP out), RTP
(:mod:`gb28181.rtp`), PS (:mod:`gb28181.ps`) and MANSCDP (:mod:`gb28181.manscdp`) modules know
nothing of the gateway and serve either side of the protocol."""
