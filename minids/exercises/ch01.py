"""Chapter 01's exercises: tokens and data."""

EXERCISES = []
