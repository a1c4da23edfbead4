"""Projections, winners and the audit replay."""
