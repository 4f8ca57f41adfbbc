"""The reference platform's partners: from ``KSENTINEL_REF_PARTNERS`` or ``DATA_DIR/partners.json``."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from ksentinel.errors import ConfigError
from ksentinel.kaltura.redact import register_secret

ENV_VAR = "KSENTINEL_REF_PARTNERS"
DEFAULT_PARTNER_IDS = (101, 102)


@dataclass(frozen=True)
class Partner:
    id: int
    admin_secret: str
    user_secret: str
    ks_version: int = 2
    max_ks_expiry: int = 86400

    @property
    def admin_secrets(self) -> tuple[str, ...]:
        return (self.admin_secret,)


def parse_env(value: str) -> dict[int, Partner]:
    """``101:ADMIN:USER[:v1],102:...`` -> partners (raises ``ConfigError``)."""
    partners: dict[int, Partner] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        fields = item.split(":")
        if len(fields) not in (3, 4) or not fields[0].isdigit() or not fields[1] or not fields[2]:
            raise ConfigError(
                f"{ENV_VAR}: expected PARTNER_ID:ADMIN_SECRET:USER_SECRET[:v1|v2], got an entry with {len(fields)} fields"
            )
        version = 2
        if len(fields) == 4:
            if fields[3] not in ("v1", "v2"):
                raise ConfigError(f"{ENV_VAR}: KS version must be v1 or v2")
            version = int(fields[3][1])
        partner = Partner(int(fields[0]), fields[1], fields[2], version)
        if partner.id in partners:
            raise ConfigError(f"{ENV_VAR}: partner {partner.id} is listed twice")
        partners[partner.id] = partner
    if not partners:
        raise ConfigError(f"{ENV_VAR} is set but lists no partner")
    return partners


def load_partners(data_dir: Path, environ: dict[str, str] | None = None) -> tuple[dict[int, Partner], str]:
    """Partners and a one-line description of where they came from (never the secrets)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        partners = parse_env(env[ENV_VAR])
        source = f"partners {', '.join(map(str, partners))} from ${ENV_VAR}"
    else:
        path = Path(data_dir) / "partners.json"
        if path.exists():
            try:
                raw = json.loads(path.read_text())
                partners = {int(p["id"]): Partner(**p) for p in raw["partners"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}: not a partners file ({exc.__class__.__name__})") from exc
            source = f"partners {', '.join(map(str, partners))} from {path}"
        else:
            partners = {
                pid: Partner(pid, secrets.token_hex(16), secrets.token_hex(16)) for pid in DEFAULT_PARTNER_IDS
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"partners": [asdict(p) for p in partners.values()]}, handle, indent=2)
            source = f"new partners {', '.join(map(str, partners))}; secrets written to {path} (mode 0600)"
    for partner in partners.values():
        register_secret(partner.admin_secret)
        register_secret(partner.user_secret)
    return partners, source
