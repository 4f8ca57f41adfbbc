"""The contract suite. Fixtures come from ksentinel's pytest plugin (``ksentinel.pytest_plugin``).

Run it with ``ksentinel contract`` (which adds the report, JUnit and exit codes), or directly:
``pytest contracts --ksentinel-url URL --ksentinel-partner-id N`` with KSENTINEL_ADMIN_SECRET set.
Without a target, the embedded reference platform is started for the session.
"""
