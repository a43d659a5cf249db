"""Build sandbox CRMs in canonical terms: accounts, users, tokens, custom fields, records.

Tests, scenario files, the demo seed and the benchmarks all describe CRM state the same
way (canonical object and field names, plain Python values); this module turns it into
each CRM's own form through the provider's schema module
(integrations/sandbox/{hubspot,salesforce}/schema.py), which knows its standard
properties, how it names and types a custom field, and how it stores a value.
"""

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from importlib import import_module
from types import ModuleType

from django.db import transaction

from integrations.crm.profiles import PROFILES, association_path
from integrations.crm.types import ObjectType
from integrations.crm.types import Provider as CrmProvider
from integrations.sandbox import store
from integrations.sandbox.models import (
    Access,
    ModelMode,
    Provider,
    SandboxAccount,
    SandboxModelScript,
    SandboxProperty,
    SandboxPropertyChange,
    SandboxRecord,
    SandboxToken,
    SandboxUser,
)


def schema_of(provider: str) -> ModuleType:
    return import_module(f"integrations.sandbox.{provider}.schema")


def profile_of(account: SandboxAccount):
    return PROFILES[CrmProvider(account.provider)]


@transaction.atomic
def create_account(
    provider: str, name: str = "Sandbox", *, external_id: str | None = None
) -> SandboxAccount:
    """A new portal / org with the CRM's standard objects and properties installed."""
    if provider not in Provider.values:
        raise ValueError(f"unknown sandbox provider {provider!r}")
    account = SandboxAccount.objects.create(
        provider=provider,
        name=name,
        external_id=external_id or _new_external_id(provider),
        daily_limit=1_000_000 if provider == Provider.HUBSPOT else 100_000,
    )
    schema_of(provider).install(account)
    return account


def _new_external_id(provider: str) -> str:
    if provider == Provider.HUBSPOT:
        return str(secrets.randbelow(90_000_000) + 10_000_000)
    return store.salesforce_id("00D", secrets.randbelow(62**6))


@transaction.atomic
def add_user(
    account: SandboxAccount,
    email: str,
    *,
    first_name: str = "",
    last_name: str = "",
    access: str = Access.ALL,
    read_access: str = "",
    team: str = "",
    readonly_fields: Iterable[str] = (),
    hidden_fields: Iterable[str] = (),
) -> SandboxUser:
    """A CRM user. ``access`` is which records they may edit, ``read_access`` which they may
    see besides (read-only sharing). Field-level security is given as ``"deal.amount"``
    (canonical) or ``"Opportunity.Amount"`` (native)."""
    number = store.allocate_numbers(account, 1)[0]
    if account.provider == Provider.HUBSPOT:
        crm_user_id, owner_id = str(1_000_000 + number), str(50_000_000 + number)
    else:
        crm_user_id = owner_id = store.salesforce_id("005", number)
    security: dict[str, dict[str, str]] = {}
    for level, names in (("read_only", readonly_fields), ("hidden", hidden_fields)):
        for qualified in names:
            object_name, field = native_field_path(account, qualified)
            security.setdefault(object_name, {})[field] = level
    return SandboxUser.objects.create(
        account=account,
        email=email.lower(),
        first_name=first_name,
        last_name=last_name,
        crm_user_id=crm_user_id,
        owner_id=owner_id,
        team=team,
        access=access,
        read_access=read_access,
        field_security=security,
    )


def native_field_path(account: SandboxAccount, qualified: str) -> tuple[str, str]:
    """``"deal.amount"`` -> ``("Opportunity", "Amount")``; native paths pass through."""
    object_part, _, field = qualified.partition(".")
    if not field:
        raise ValueError(f"{qualified!r} should be <object>.<field>")
    profile = profile_of(account)
    try:
        object_type = ObjectType(object_part)
    except ValueError:
        return object_part, field
    return profile.object_name(object_type), profile.native_field(object_type, field)


def issue_token(
    user: SandboxUser,
    *,
    expires_in: timedelta | None = None,
    refresh: bool = False,
    access_token: str | None = None,
    scopes: Iterable[str] = (),
) -> SandboxToken:
    """A bearer token for ``user``: without ``expires_in`` a private-app token / session
    that never expires; with ``refresh``, an OAuth pair. Without ``scopes`` it may do
    everything; with them, only what they grant."""
    # HubSpot private-app tokens start "pat-"; OAuth access tokens do not.
    hubspot_prefix = "CO" if refresh or expires_in is not None else "pat-na1-"
    prefix = {Provider.HUBSPOT: hubspot_prefix, Provider.SALESFORCE: "00D!"}.get(
        user.account.provider, ""
    )
    return SandboxToken.objects.create(
        account=user.account,
        user=user,
        access_token=access_token or prefix + secrets.token_urlsafe(32),
        refresh_token=secrets.token_urlsafe(32) if refresh else None,
        expires_at=store.now() + expires_in if expires_in is not None else None,
        scopes=" ".join(scopes),
    )


def add_custom_field(
    account: SandboxAccount,
    object_type: ObjectType | str,
    name: str,
    type: str,
    *,
    label: str = "",
    options: Iterable[str] = (),
) -> SandboxProperty:
    """A custom field named canonically (``pain_points``); ``type`` is canonical:
    string, text, number, date, datetime, bool, enumeration, phone."""
    object_type = ObjectType(object_type)
    profile = profile_of(account)
    return schema_of(account.provider).custom_property(
        account,
        profile.object_name(object_type),
        profile.custom_field(name),
        type,
        label or name.replace("_", " ").capitalize(),
        list(options),
    )


@transaction.atomic
def add_record(
    account: SandboxAccount,
    object_type: ObjectType | str,
    fields: Mapping[str, object],
    *,
    owner: SandboxUser | None = None,
    associations: Iterable[SandboxRecord] = (),
    modified_at: Mapping[str, datetime] | None = None,
    source_type: str = "CRM_UI",
) -> SandboxRecord:
    """A record from canonical fields and plain values, associated with earlier records.

    ``modified_at`` back-dates when given fields last changed (a human edit last week).
    """
    object_type = ObjectType(object_type)
    profile = profile_of(account)
    object_name = profile.object_name(object_type)
    schema = schema_of(account.provider)
    properties = {
        prop.name: prop
        for prop in SandboxProperty.objects.filter(account=account, object_name=object_name)
    }
    values: dict[str, object] = {}
    for field, value in fields.items():
        if field == "owner":
            continue
        native = profile.native_field(object_type, field)
        if native not in properties:
            raise ValueError(f"{object_name} has no property {native!r} (from {field!r})")
        values[native] = schema.to_native(properties[native], value)
    if owner is not None:
        values[profile.native_field(object_type, "owner")] = schema.owner_value(owner)
    targets = list(associations)
    if account.provider == Provider.SALESFORCE:
        values.update(_salesforce_lookups(object_type, targets))
    record = store.create_record(
        account,
        object_name,
        values,
        owner=owner,
        source_type=source_type,
        source_id=f"userId:{owner.crm_user_id}" if owner else "",
    )
    for target in targets:
        _associate(account, record, object_type, target)
    if modified_at:
        _backdate(record, profile, object_type, modified_at)
    return record


def _salesforce_lookups(object_type: ObjectType, targets: list[SandboxRecord]) -> dict:
    profile = PROFILES[CrmProvider.SALESFORCE]
    lookups = {}
    for target in targets:
        path, reverse = association_path(object_type, profile.object_type_of(target.object_name))
        if path.salesforce_lookup and not reverse:
            lookups[path.salesforce_lookup] = target.crm_id
    return lookups


def _associate(
    account: SandboxAccount, record: SandboxRecord, object_type: ObjectType, target: SandboxRecord
) -> None:
    profile = profile_of(account)
    target_type = profile.object_type_of(target.object_name)
    path, reverse = association_path(object_type, target_type)
    if account.provider == Provider.HUBSPOT:
        source, dest = (target, record) if reverse else (record, target)
        store.associate(
            source,
            dest,
            type_id=path.hubspot_type_id,
            reverse_type_id=REVERSE_HUBSPOT_TYPES[path.hubspot_type_id],
        )
        return
    if path.salesforce_lookup:
        if reverse:  # the lookup lives on the target: point it at this record
            store.update_record(target, {path.salesforce_lookup: record.crm_id})
        return
    junction, source_field, target_field = path.salesforce_junction
    source, dest = (target, record) if reverse else (record, target)
    store.create_record(
        account,
        junction,
        {
            source_field: source.crm_id,
            target_field: dest.crm_id,
            "Role": "Decision Maker",
            "IsPrimary": False,
        },
    )


# HubSpot's default association type ids, each direction (hubspot/crm/association_type.py).
REVERSE_HUBSPOT_TYPES = {279: 280, 280: 279, 341: 342, 342: 341, 3: 4, 4: 3}


def _backdate(
    record: SandboxRecord, profile, object_type: ObjectType, modified_at: Mapping[str, datetime]
) -> None:
    for field, when in modified_at.items():
        native = profile.native_field(object_type, field)
        SandboxPropertyChange.objects.filter(record=record, name=native).update(changed_at=when)
    SandboxRecord.objects.filter(pk=record.pk).update(
        updated_at=max([record.updated_at, *modified_at.values()])
    )
    record.refresh_from_db()


@transaction.atomic
def create_model_account(
    mode: str = ModelMode.RULES, *, name: str = "Sandbox model", api_key: str | None = None
) -> tuple[SandboxAccount, str]:
    """A model endpoint account and its API key."""
    account = SandboxAccount.objects.create(
        provider=Provider.OPENAI, name=name, external_id=secrets.token_hex(8), model_mode=mode
    )
    user = SandboxUser.objects.create(
        account=account, email="model@sandbox.example", crm_user_id="model", owner_id="model"
    )
    token = issue_token(user, access_token=api_key or "sk-sandbox-" + secrets.token_urlsafe(24))
    return account, token.access_token


@transaction.atomic
def ensure_rules_model_account(api_key: str, *, name: str = "Demo model") -> SandboxAccount:
    """The rules-mode model account that answers ``api_key``, created when missing.

    Idempotent: the demo's well-known key keeps pointing at one account, set back to rules
    mode and active if someone changed it, so ``make demo`` always has a model offline.
    """
    token = (
        SandboxToken.objects.select_related("account", "user")
        .filter(access_token=api_key, account__provider=Provider.OPENAI)
        .first()
    )
    if token is None:
        account, _ = create_model_account(ModelMode.RULES, name=name, api_key=api_key)
        return account
    account = token.account
    if account.model_mode != ModelMode.RULES:
        account.model_mode = ModelMode.RULES
        account.save(update_fields=["model_mode"])
    if token.revoked or token.expires_at is not None:
        token.revoked, token.expires_at = False, None
        token.save(update_fields=["revoked", "expires_at"])
    if not token.user.is_active:
        token.user.is_active = True
        token.user.save(update_fields=["is_active"])
    return account


def script_answer(
    account: SandboxAccount, key: str, step: str, answer: Mapping[str, object], *, position: int = 0
) -> SandboxModelScript:
    """Queue an answer for scripted mode: ``{"content": ...}`` or ``{"tool_calls": [...]}``."""
    if not ({"content", "tool_calls"} & set(answer)):
        raise ValueError("a scripted answer needs 'content' or 'tool_calls'")
    return SandboxModelScript.objects.create(
        account=account, key=key, step=step, position=position, answer=dict(answer)
    )
