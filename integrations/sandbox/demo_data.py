"""A realistic, deterministic demo CRM: the same companies, people and deals on both CRMs.

Several companies hold more than one open deal (one per product line), so record matching
has real choices to make; owners sit on two teams with different record access.
"""

import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import transaction

from integrations.sandbox import seed
from integrations.sandbox.models import Access, SandboxAccount, SandboxToken, SandboxUser

# (name, domain, HubSpot industry, Salesforce Industry): each CRM's own picklist values.
COMPANIES = [
    ("Acme Robotics", "acme.example", "MACHINERY", "Machinery"),
    ("Globex Logistics", "globex.example", "LOGISTICS_AND_SUPPLY_CHAIN", "Transportation"),
    ("Initech Software", "initech.example", "COMPUTER_SOFTWARE", "Technology"),
    ("Umbrella Health", "umbrella.example", "HOSPITAL_HEALTH_CARE", "Healthcare"),
    ("Stark Energy", "stark.example", "OIL_ENERGY", "Energy"),
    ("Wayne Financial", "wayne.example", "FINANCIAL_SERVICES", "Finance"),
    ("Hooli Cloud", "hooli.example", "INTERNET", "Technology"),
    ("Pied Piper Compression", "piedpiper.example", "COMPUTER_SOFTWARE", "Technology"),
    ("Soylent Foods", "soylent.example", "FOOD_BEVERAGES", "Food & Beverage"),
    ("Cyberdyne Systems", "cyberdyne.example", "DEFENSE_SPACE", "Government"),
    ("Tyrell Biotech", "tyrell.example", "BIOTECHNOLOGY", "Biotechnology"),
    ("Wonka Confections", "wonka.example", "FOOD_PRODUCTION", "Food & Beverage"),
    ("Oscorp Materials", "oscorp.example", "CHEMICALS", "Chemicals"),
    ("Vandelay Industries", "vandelay.example", "IMPORT_AND_EXPORT", "Shipping"),
    ("Massive Dynamic", "massive.example", "RESEARCH", "Engineering"),
    ("Gringotts Trust", "gringotts.example", "BANKING", "Banking"),
    ("Dunder Mifflin Paper", "dundermifflin.example", "PAPER_FOREST_PRODUCTS", "Manufacturing"),
    ("Sterling Cooper Media", "sterlingcooper.example", "MARKETING_AND_ADVERTISING", "Media"),
    ("Monarch Retail", "monarch.example", "RETAIL", "Retail"),
    ("Nakatomi Trading", "nakatomi.example", "INTERNATIONAL_TRADE_AND_DEVELOPMENT", "Shipping"),
    ("Aperture Labs", "aperture.example", "RESEARCH", "Engineering"),
    (
        "Black Mesa Instruments",
        "blackmesa.example",
        "ELECTRICAL_ELECTRONIC_MANUFACTURING",
        "Electronics",
    ),
    ("Prestige Worldwide", "prestige.example", "ENTERTAINMENT", "Entertainment"),
    ("Bluth Homes", "bluth.example", "REAL_ESTATE", "Construction"),
    ("Krusty Foods", "krusty.example", "RESTAURANTS", "Hospitality"),
    ("Los Pollos Logistics", "lospollos.example", "LOGISTICS_AND_SUPPLY_CHAIN", "Transportation"),
    ("Octan Fuels", "octan.example", "OIL_ENERGY", "Energy"),
    ("Virtucon Holdings", "virtucon.example", "INVESTMENT_MANAGEMENT", "Finance"),
    ("Spacely Sprockets", "spacely.example", "MACHINERY", "Machinery"),
    ("Cogswell Cogs", "cogswell.example", "MACHINERY", "Manufacturing"),
]
FIRST_NAMES = [
    "Jane",
    "Omar",
    "Priya",
    "Lucas",
    "Mei",
    "Tomás",
    "Aisha",
    "Noah",
    "Elena",
    "Kofi",
    "Sofia",
    "Ravi",
    "Hannah",
    "Diego",
    "Yuki",
    "Amara",
]
LAST_NAMES = [
    "Doe",
    "Haddad",
    "Sharma",
    "Meyer",
    "Chen",
    "García",
    "Bello",
    "Smith",
    "Rossi",
    "Mensah",
    "Novak",
    "Iyer",
    "Schmidt",
    "López",
    "Tanaka",
    "Okafor",
]
TITLES = [
    "VP Sales",
    "Head of Procurement",
    "CTO",
    "Operations Manager",
    "CFO",
    "IT Director",
    "Chief of Staff",
    "Engineering Manager",
]
PRODUCT_LINES = ["Platform", "Analytics", "Support plan"]
# (HubSpot default pipeline stage, Salesforce StageName), open stages first.
STAGES = [
    ("appointmentscheduled", "Prospecting"),
    ("qualifiedtobuy", "Qualification"),
    ("presentationscheduled", "Needs Analysis"),
    ("decisionmakerboughtin", "Id. Decision Makers"),
    ("contractsent", "Proposal/Price Quote"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
]
FORECASTS = ["commit", "best_case", "pipeline"]

# (email, first, last, access, team); tokens are predictable so the demo can connect.
SALES_TEAM = [
    ("ops@seller.example", "Avery", "Admin", Access.ALL, ""),
    ("riley@seller.example", "Riley", "Rep", Access.OWNED, "west"),
    ("sam@seller.example", "Sam", "Rep", Access.OWNED, "east"),
    ("morgan@seller.example", "Morgan", "Manager", Access.TEAM, "west"),
]


@dataclass(frozen=True)
class DemoSummary:
    account: SandboxAccount
    tokens: dict[str, str]
    counts: dict[str, int]


def demo_token(provider: str, email: str) -> str:
    # HubSpot private-app tokens start "pat-": pasted into the connect page, this one is
    # recognised as one, as a real private-app token would be.
    prefix = "pat-na1-" if provider == "hubspot" else ""
    return f"{prefix}sandbox-{provider}-{email.split('@')[0]}"


@transaction.atomic
def build_demo_crm(provider: str, *, name: str, rng_seed: int = 2026) -> DemoSummary:
    rng = random.Random(rng_seed)
    account = seed.create_account(provider, name)
    seed.add_custom_field(account, "deal", "pain_points", "text", label="Pain points")
    seed.add_custom_field(account, "deal", "discount", "number", label="Discount (%)")
    seed.add_custom_field(
        account, "deal", "forecast", "enumeration", label="Forecast category", options=FORECASTS
    )
    users: list[SandboxUser] = []
    tokens: dict[str, str] = {}
    for email, first, last, access, team in SALES_TEAM:
        user = seed.add_user(
            account, email, first_name=first, last_name=last, access=access, team=team
        )
        token = demo_token(provider, email)
        SandboxToken.objects.filter(access_token=token).delete()
        seed.issue_token(user, access_token=token)
        users.append(user)
        tokens[email] = token
    reps = users[1:]
    counts = {"company": 0, "contact": 0, "deal": 0}
    today = date.today()
    for index, (company_name, domain, hubspot_industry, salesforce_industry) in enumerate(
        COMPANIES
    ):
        owner = reps[index % len(reps)]
        industry = hubspot_industry if provider == "hubspot" else salesforce_industry
        company = seed.add_record(
            account,
            "company",
            {"name": company_name, "domain": domain, "industry": industry},
            owner=owner,
        )
        counts["company"] += 1
        contacts = []
        for _ in range(rng.randint(1, 3)):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{_ascii(first)}.{_ascii(last)}@{domain}"
            contacts.append(
                seed.add_record(
                    account,
                    "contact",
                    {
                        "first_name": first,
                        "last_name": last,
                        "email": email,
                        "title": rng.choice(TITLES),
                        "phone": f"+1 555 {rng.randint(1000, 9999)}",
                    },
                    owner=owner,
                    associations=[company],
                )
            )
            counts["contact"] += 1
        for line in rng.sample(PRODUCT_LINES, rng.randint(1, 3)):
            hubspot_stage, salesforce_stage = rng.choice(STAGES)
            stage = hubspot_stage if provider == "hubspot" else salesforce_stage
            fields = {
                "name": f"{company_name.split()[0]} {line}",
                "amount": rng.randrange(5_000, 250_000, 500),
                "stage": stage,
                "close_date": (today + timedelta(days=rng.randint(-60, 180))).isoformat(),
                "forecast": rng.choice(FORECASTS),
            }
            if rng.random() < 0.5:
                fields["next_step"] = "Follow up on the security review"
            seed.add_record(
                account,
                "deal",
                fields,
                owner=rng.choice(reps),
                associations=[company, *contacts[:1]],
            )
            counts["deal"] += 1
    return DemoSummary(account, tokens, counts)


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
