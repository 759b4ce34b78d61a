"""RFC 2617 Digest (MD5), shared by every protocol of the project that speaks it: RTSP out
(``gateway/rtsp`` with ``acl.digest``'s derived passwords) and GB/T 28181 SIP (``gb28181``, both
as a server to devices and as a client of superior platforms). It imports nothing of ours."""
