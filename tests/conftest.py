"""Shared test configuration: this folder is on ``sys.path`` (pytest's prepend import mode),
so helper modules here (``apcorr_files``) are importable from every test package."""
