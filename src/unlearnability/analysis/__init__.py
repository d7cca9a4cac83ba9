"""Analyses of finished runs: calibration of the testbed (generalisation, seed agreement,
response styles). Pure functions of run tables; nothing here trains or samples."""
