"""The shell around the core: the ``moodtune`` command line and the web demo's upload handling.

Nothing in ``multimodal``, ``fusion`` or ``recommend`` imports from here; this package imports them.
"""
