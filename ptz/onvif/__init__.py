"""ONVIF: a SOAP client with WS-Security (:mod:`~ptz.onvif.soap`), device and media queries
(:mod:`~ptz.onvif.device`), the PTZ driver (:mod:`~ptz.onvif.driver`) and WS-Discovery
(:mod:`~ptz.onvif.discovery`)."""

from ptz.onvif.device import DeviceInfo, OnvifDevice, Profile
from ptz.onvif.discovery import DiscoveredDevice, probe
from ptz.onvif.driver import OnvifPtz
from ptz.onvif.soap import SoapClient, SoapFault

__all__ = ["DeviceInfo", "DiscoveredDevice", "OnvifDevice", "OnvifPtz", "Profile", "SoapClient", "SoapFault", "probe"]
