"""Reliability: failures at scale, checkpointing, optimal intervals, Monte Carlo and goodput.

Pure functions over explicit numbers (sizes in bytes, times in seconds, rates per hour); the
training engine supplies the checkpoint size and the useful time.
"""
