"""Model tooling: training, export, calibration and evaluation. Never part of the deployed function."""
