"""Terraform for Google Cloud, and the smoke test of a deployment (``python -m infra.smoke``)."""
