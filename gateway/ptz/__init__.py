"""PTZ in the gateway: who holds a camera's PTZ (:mod:`~gateway.ptz.holds`, local or on Redis in a
cluster), the service that arbitrates, drives the camera and audits (:mod:`~gateway.ptz.service`),
camera import from ONVIF (:mod:`~gateway.ptz.onvif_import`) and the settings (:mod:`~gateway.ptz.settings`).
Who may steer, and whose priority wins, is decided in :mod:`gateway.policy.ptz`."""
