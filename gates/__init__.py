"""Judgments over journals: pure functions of frames and thresholds -> Verdict."""
