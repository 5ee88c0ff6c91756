"""Rendering of verdicts and frames to Markdown and HTML, and publishing them."""
