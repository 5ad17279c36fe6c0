"""MUSUBI: a self-hosted platform for AI-assisted, specification-driven development.

Importing this package is cheap on purpose: it pulls in no server, database driver or
ML library. Each area lives in its own subpackage and is imported where it is used.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
