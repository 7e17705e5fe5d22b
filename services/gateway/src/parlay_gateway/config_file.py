"""The channel-accounts config file (PARLAY_CHANNEL_ACCOUNTS_FILE), JSON or YAML.

    channel_accounts:            # or a top-level list
      - tenant_id: demo
        channel_account_id: demo-whatsapp
        channel: whatsapp
        credentials:
          app_secret: ${WHATSAPP_APP_SECRET}    # ${VAR} is read from the environment
          verify_token: ${WHATSAPP_VERIFY_TOKEN}
          access_token: ${WHATSAPP_ACCESS_TOKEN}
        settings:
          phone_number_id: "1234567890"

Parsing is pure (`parse_account_specs`); `load_account_specs` only reads the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parlay_gateway.accounts import validate_new_account
from parlay_kit.errors import InvalidArgument

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The file cannot be used; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class AccountSpec:
    tenant_id: str
    channel_account_id: str
    channel: str
    credentials: dict[str, str] = field(repr=False)
    settings: dict[str, str] = field(default_factory=dict)


def _expand(value: Any, where: str, env: Mapping[str, str]) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: expected a string")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return env[name]

    return _ENV_REF.sub(substitute, str(value))


def _string_map(raw: Any, where: str, env: Mapping[str, str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return {str(k): _expand(v, f"{where}.{k}", env) for k, v in raw.items()}


def parse_account_specs(
    text: str, *, yaml: bool = False, env: Mapping[str, str] | None = None
) -> list[AccountSpec]:
    env = os.environ if env is None else env
    try:
        if yaml:
            import yaml as pyyaml

            data = pyyaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(f"not valid {'YAML' if yaml else 'JSON'}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("channel_accounts")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError("expected a list of channel accounts (or a 'channel_accounts' key)")
    specs: list[AccountSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(data):
        where = f"channel_accounts[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping")
        tenant_id = str(entry.get("tenant_id") or "")
        if not tenant_id:
            raise ConfigError(f"{where}.tenant_id: is required")
        spec = AccountSpec(
            tenant_id=tenant_id,
            channel_account_id=str(entry.get("channel_account_id") or ""),
            channel=str(entry.get("channel") or ""),
            credentials=_string_map(entry.get("credentials"), f"{where}.credentials", env),
            settings=_string_map(entry.get("settings"), f"{where}.settings", env),
        )
        try:
            validate_new_account(
                spec.channel_account_id, spec.channel, spec.credentials, spec.settings
            )
        except InvalidArgument as exc:
            raise ConfigError(f"{where}.{exc}") from exc
        if spec.channel_account_id in seen:
            raise ConfigError(f"{where}.channel_account_id: {spec.channel_account_id!r} repeated")
        seen.add(spec.channel_account_id)
        specs.append(spec)
    return specs


def load_account_specs(path: str | Path, env: Mapping[str, str] | None = None) -> list[AccountSpec]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc}") from exc
    try:
        return parse_account_specs(text, yaml=p.suffix.lower() in (".yaml", ".yml"), env=env)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
