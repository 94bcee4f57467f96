"""The shell around the core: the ``moodtune`` command line, the HTTP API (uvicorn or Ray Serve), a client of that
API with the engine's methods, the opt-in mood journal, and the web demo's upload handling.

Nothing in ``multimodal``, ``fusion`` or ``recommend`` imports from here; this package imports them.
"""
