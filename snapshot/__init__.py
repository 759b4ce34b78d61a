"""Thumbnails for the camera wall.

``service.SnapshotService`` answers ``GET /api/cameras/{id}/snapshot.jpg``: it decodes the stream hub's
cached keyframe of a live camera (once per keyframe), or makes one short, shared cold pull
(``cold.ColdPuller``, bounded pool) for the others; ``render`` scales, masks (``masks``) and encodes;
``cache`` keeps thumbnails in memory or Redis; ``interest`` tracks what consoles show so the
background refresher keeps those fresh, most-watched first.
"""
