"""Analysis helpers for the CD19 CAR-T B-ALL research book.

All analysis logic lives here; the notebooks only call these functions and tell the story.
"""
