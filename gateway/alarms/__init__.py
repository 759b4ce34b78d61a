"""Panic alarms from vehicles and other systems, and the incident workflow they open."""
