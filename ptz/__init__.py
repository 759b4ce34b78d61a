"""PTZ as a camera capability: the typed port gateways steer through, and its drivers.

:mod:`ptz.ports` is the port (:class:`~ptz.ports.PtzDriver`) with its value types; :mod:`ptz.onvif`
is the ONVIF driver (SOAP over HTTP, WS-Security UsernameToken digest, the camera's clock offset)
with device queries (profiles, stream and snapshot URIs) and WS-Discovery for import. The package
imports nothing else of Liandong: who may steer, and who holds a camera, is the gateway's business.
"""

from ptz.ports import Preset, PtzCapabilities, PtzDriver, PtzError, PtzPosition

__all__ = ["Preset", "PtzCapabilities", "PtzDriver", "PtzError", "PtzPosition"]
