"""``crm``: one sandbox CRM account, served over HTTP, with an adapter on it; once per CRM."""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import pytest

from integrations.crm.clients import build_client
from integrations.crm.types import ObjectType
from integrations.sandbox import seed, store
from integrations.sandbox.demo_data import STAGES
from integrations.sandbox.models import SandboxProperty, SandboxRecord, SandboxRequest, SandboxUser

SALESFORCE_STAGE = dict(STAGES)


class CrmWorld:
    def __init__(self, provider: str, server) -> None:
        self.provider = provider
        self.server = server
        self.account = seed.create_account(provider, f"conformance {provider}")
        self.profile = seed.profile_of(self.account)
        self.schema = seed.schema_of(provider)
        self.user = seed.add_user(self.account, "ops@seller.example", first_name="Avery")
        self.client = self.client_for(self.user)
        self.started = store.now()

    # --- names ---------------------------------------------------------------------------
    def field(self, object_type: ObjectType, canonical: str) -> str:
        return self.profile.native_field(object_type, canonical)

    def last_modified(self, object_type: ObjectType) -> str:
        return self.profile.last_modified[object_type]

    def stage(self, hubspot_stage: str) -> str:
        return hubspot_stage if self.provider == "hubspot" else SALESFORCE_STAGE[hubspot_stage]

    def native_value(self, value: object) -> object:
        return value

    def missing_id(self, object_type: ObjectType) -> str:
        if self.provider == "hubspot":
            return "987654321"
        prefix = store.SALESFORCE_KEY_PREFIXES[self.profile.object_name(object_type)]
        return store.salesforce_id(prefix, 62**8)

    # --- state -----------------------------------------------------------------------------
    def client_for(
        self,
        user: SandboxUser,
        *,
        expires_in: timedelta | None = None,
        timeout: float = 10.0,
        scopes: Iterable[str] = (),
    ):
        token = seed.issue_token(user, expires_in=expires_in, scopes=scopes)
        return build_client(
            self.provider,
            base_url=self.server.url,
            access_token=token.access_token,
            timeout=timeout,
        )

    def add_user(self, email: str, **kwargs) -> SandboxUser:
        return seed.add_user(self.account, email, **kwargs)

    def add(
        self,
        object_type: ObjectType,
        fields: Mapping[str, object],
        *,
        owner: SandboxUser | None = None,
        associations: Iterable[SandboxRecord] = (),
        modified_at: Mapping[str, datetime] | None = None,
    ) -> SandboxRecord:
        return seed.add_record(
            self.account,
            object_type,
            fields,
            owner=owner or self.user,
            associations=associations,
            modified_at=modified_at,
        )

    def bulk_add(self, object_type: ObjectType, rows: list[Mapping[str, object]]) -> list:
        object_name = self.profile.object_name(object_type)
        props = {
            prop.name: prop
            for prop in SandboxProperty.objects.filter(
                account=self.account, object_name=object_name
            )
        }
        owner_field = self.field(object_type, "owner")
        native_rows = []
        for fields in rows:
            values = {}
            for canonical, value in fields.items():
                native = self.field(object_type, canonical)
                values[native] = self.schema.to_native(props[native], value)
            values[owner_field] = self.schema.owner_value(self.user)
            native_rows.append((values, self.user))
        return store.bulk_create_records(self.account, object_name, native_rows)

    def custom_field(self, object_type: ObjectType, name: str, type: str, **kwargs):
        return seed.add_custom_field(self.account, object_type, name, type, **kwargs)

    def human_edit(self, record: SandboxRecord, values: Mapping[str, object]) -> None:
        """A person changes the record in the CRM a little later than the agent's read."""
        record.refresh_from_db()
        props = {
            prop.name: prop
            for prop in SandboxProperty.objects.filter(
                account=self.account, object_name=record.object_name, name__in=list(values)
            )
        }
        native = {name: self.schema.to_native(props[name], value) for name, value in values.items()}
        store.update_record(
            record,
            native,
            source_type="CRM_UI",
            source_id=f"userId:{self.user.crm_user_id}",
            at=store.now() + timedelta(seconds=2),
        )

    def written(self) -> dict[str, dict]:
        """Everything the CRM was made to write since the test started (request log)."""
        merged: dict[str, dict] = {}
        for written in SandboxRequest.objects.filter(
            account=self.account, started_at__gte=self.started, status__lt=400
        ).values_list("written", flat=True):
            for crm_id, values in written.items():
                merged.setdefault(crm_id, {}).update(values)
        return merged

    def limit_to_one_request(self) -> None:
        self.account.burst_limit = 1
        self.account.search_per_second = 1
        self.account.daily_limit = 1 if self.provider == "salesforce" else self.account.daily_limit
        self.account.save()

    def inject(self, **settings: float) -> None:
        for name, value in settings.items():
            setattr(self.account, name, value)
        self.account.save()


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request, sandbox_server) -> CrmWorld:
    return CrmWorld(request.param, sandbox_server)
