"""The one base class of every error moodtune raises on purpose (``except MoodtuneError`` catches them all)."""


class MoodtuneError(Exception):
    """Base of moodtune's own errors: bad input, a missing backbone, an unusable catalog or profile, Spotify."""
