"""Tests of tally/: winners and the Pabulib format."""
