"""The demo CRM as the sample calls need it: companies with their people and deals.

Read from the sandbox's tables, for both demo CRMs, and checked to be the same on both:
the demo data is seeded alike (integrations/sandbox/demo_data.py), so the sample calls
match the same records on HubSpot and Salesforce.
"""

from dataclasses import dataclass

from integrations.crm.profiles import PROFILES, association_path
from integrations.crm.types import ObjectType, Provider
from integrations.sandbox.demo_data import PRODUCT_LINES, STAGES
from integrations.sandbox.management.commands.sandbox_seed import DEMO_NAMES
from integrations.sandbox.models import SandboxAccount, SandboxAssociation, SandboxRecord

CLOSED_STAGES = frozenset(
    stage for pair in STAGES if pair[0].startswith("closed") for stage in pair
)


class DemoDataError(Exception):
    """The demo CRMs are missing or differ from each other."""


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    email: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True)
class Deal:
    name: str
    product: str
    owner_email: str
    closed: bool


@dataclass(frozen=True)
class DemoCompany:
    name: str
    domain: str
    contacts: tuple[Person, ...]  # in CRM order: the first is a contact on every deal
    deals: tuple[Deal, ...]

    @property
    def open_deals(self) -> tuple[Deal, ...]:
        return tuple(deal for deal in self.deals if not deal.closed)


def demo_companies() -> list[DemoCompany]:
    """The demo CRM's companies, people and deals, the same on both CRMs."""
    found = [_companies(_account(provider, name)) for provider, name in DEMO_NAMES.items()]
    if any(companies != found[0] for companies in found):
        raise DemoDataError(
            "The demo HubSpot portal and Salesforce org hold different companies, people or "
            "deals: rebuild both with `manage.py sandbox_seed`."
        )
    return found[0]


def _account(provider: str, name: str) -> SandboxAccount:
    account = SandboxAccount.objects.filter(provider=provider, name=name).order_by("-pk").first()
    if account is None:
        raise DemoDataError(f"There is no {name} in the sandbox: run `manage.py sandbox_seed`.")
    return account


def _companies(account: SandboxAccount) -> list[DemoCompany]:
    profile = PROFILES[Provider(account.provider)]
    live = SandboxRecord.objects.filter(account=account, deleted_at=None).order_by("pk")

    def records(object_type: ObjectType) -> list[SandboxRecord]:
        return list(live.filter(object_name=profile.object_name(object_type)))

    def value(record: SandboxRecord, object_type: ObjectType, field: str) -> str:
        return str(record.values.get(profile.native_field(object_type, field)) or "")

    contacts, deals = records(ObjectType.CONTACT), records(ObjectType.DEAL)
    owners = {user.pk: user.email for user in account.users.all()}
    contact_company = _company_ids(account, ObjectType.CONTACT, contacts)
    deal_company = _company_ids(account, ObjectType.DEAL, deals)
    companies = []
    for company in records(ObjectType.COMPANY):
        people = tuple(
            Person(
                value(c, ObjectType.CONTACT, "first_name"),
                value(c, ObjectType.CONTACT, "last_name"),
                value(c, ObjectType.CONTACT, "email").lower(),
            )
            for c in contacts
            if contact_company.get(c.crm_id) == company.crm_id
        )
        its_deals = tuple(
            Deal(
                name=value(d, ObjectType.DEAL, "name"),
                product=_product(value(d, ObjectType.DEAL, "name")),
                owner_email=owners.get(d.owner_id, ""),
                closed=value(d, ObjectType.DEAL, "stage") in CLOSED_STAGES,
            )
            for d in deals
            if deal_company.get(d.crm_id) == company.crm_id
        )
        if people:
            companies.append(
                DemoCompany(
                    value(company, ObjectType.COMPANY, "name"),
                    value(company, ObjectType.COMPANY, "domain"),
                    people,
                    its_deals,
                )
            )
    return companies


def _company_ids(
    account: SandboxAccount, object_type: ObjectType, records: list[SandboxRecord]
) -> dict[str, str]:
    """Each record's company id: a lookup field on Salesforce, an association on HubSpot."""
    path, _ = association_path(object_type, ObjectType.COMPANY)
    if account.provider == Provider.SALESFORCE:
        return {r.crm_id: str(r.values.get(path.salesforce_lookup) or "") for r in records}
    company_object = PROFILES[Provider.HUBSPOT].object_name(ObjectType.COMPANY)
    links = SandboxAssociation.objects.filter(
        account=account, from_record__in=records, to_record__object_name=company_object
    )
    return dict(links.values_list("from_record__crm_id", "to_record__crm_id"))


def _product(deal_name: str) -> str:
    return next((line for line in PRODUCT_LINES if deal_name.endswith(line)), deal_name)
