"""Targets and configuration shared by every command.

Where values come from, highest first: flag > ``KSENTINEL_*`` environment variable > ``ksentinel.toml``
> default. ``ksentinel.toml`` is ``--config FILE``, else ``$KSENTINEL_CONFIG``, else the first one found
walking up from the working directory. It is validated on load: an unknown key, a wrong type or an
inline secret is a one-line :class:`~ksentinel.errors.ConfigError` naming the key path.

Secrets are read only from environment variables (``*_secret_env``) or files (``*_secret_file``),
never from the TOML itself nor from flags, and each one is registered with
:func:`ksentinel.kaltura.redact.register_secret` as soon as it is read.

Environments (docs/production.md): each target is ``production``, ``staging`` or ``test``
(``environment``; ``staging`` by default, the embedded platform is ``test``), may ``allow_writes``
(production only) and has a request-rate cap ``max_rps`` (``"unlimited"``; by default 10 for
staging and production, none for test targets and staging ones on a loopback address).

Target selection: ``--target`` / ``$KSENTINEL_TARGET`` names a ``[targets.NAME]`` (``--url`` and
``--partner-id`` then override its values); otherwise ``--url`` + ``--partner-id`` make an ad-hoc
target, named ``adhoc`` unless ``--target-name`` / ``$KSENTINEL_TARGET_NAME`` names it; otherwise
``default_target`` from the file; otherwise nothing, which means "use the embedded reference
platform" (the CLI starts it, this module never imports ``ksentinel.reference``).

``[reports] keep = N`` (default 20): how many timestamped run folders ``reports/`` keeps
(:mod:`ksentinel.report.retention` prunes the older ones; 0 = never).

Modules: ``model`` (the dataclasses and :class:`Secret`), ``file`` (finding and validating the file),
``resolve`` (precedence, secrets, the embedded fallback), ``values`` (the checks all three share).
"""

from __future__ import annotations

from ksentinel.config.file import find_config, load_config
from ksentinel.config.model import (
    ADHOC_TARGET,
    CONFIG_FILENAME,
    DEFAULT_ADMIN_SECRET_ENV,
    DEFAULT_ENVIRONMENT,
    DEFAULT_KS_VERSION,
    DEFAULT_MAX_RPS,
    DEFAULT_PEER_ADMIN_SECRET_ENV,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_REPORTS_KEEP,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_SECRET_ENV,
    EMBEDDED_TARGET,
    ENV_ALLOW_WRITES,
    ENV_CONFIG,
    ENV_ENVIRONMENT,
    ENV_KS_VERSION,
    ENV_MAX_RPS,
    ENV_PARTNER_ID,
    ENV_PEER_PARTNER_ID,
    ENV_READY_TIMEOUT,
    ENV_TARGET,
    ENV_TARGET_NAME,
    ENV_TIMEOUT,
    ENV_URL,
    ENVIRONMENTS,
    OPAQUE_SECTIONS,
    PRODUCTION,
    STAGING,
    TEST,
    Config,
    ReportsConfig,
    ResolvedTarget,
    Secret,
    Target,
    TargetConfig,
)
from ksentinel.config.resolve import check_adhoc_name, resolve_target

__all__ = [
    "ADHOC_TARGET",
    "CONFIG_FILENAME",
    "DEFAULT_ADMIN_SECRET_ENV",
    "DEFAULT_ENVIRONMENT",
    "DEFAULT_KS_VERSION",
    "DEFAULT_MAX_RPS",
    "DEFAULT_PEER_ADMIN_SECRET_ENV",
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_REPORTS_KEEP",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_SECRET_ENV",
    "EMBEDDED_TARGET",
    "ENVIRONMENTS",
    "ENV_ALLOW_WRITES",
    "ENV_CONFIG",
    "ENV_ENVIRONMENT",
    "ENV_KS_VERSION",
    "ENV_MAX_RPS",
    "ENV_PARTNER_ID",
    "ENV_PEER_PARTNER_ID",
    "ENV_READY_TIMEOUT",
    "ENV_TARGET",
    "ENV_TARGET_NAME",
    "ENV_TIMEOUT",
    "ENV_URL",
    "OPAQUE_SECTIONS",
    "PRODUCTION",
    "STAGING",
    "TEST",
    "Config",
    "ReportsConfig",
    "ResolvedTarget",
    "Secret",
    "Target",
    "TargetConfig",
    "check_adhoc_name",
    "find_config",
    "load_config",
    "resolve_target",
]
