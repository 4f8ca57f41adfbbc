"""ksentinel: contract tests, load tests and synthetic probes for Kaltura-style video platform APIs."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
