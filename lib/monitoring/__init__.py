"""Monitoring: drift and quality of served data against the reference, alerts, the dashboard."""
