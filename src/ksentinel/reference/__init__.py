"""The embedded reference platform: a Kaltura-compatible API server for demos and tests.

Nothing in ksentinel imports this package except the CLI and the tests.
"""
