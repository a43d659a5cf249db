"""Who a token belongs to, for tokens that are not OAuth grants.

HubSpot: a private-app token acts as the app, not a user; ``GET /account-info/v3/details``
tells which portal it belongs to. Salesforce: ``GET /services/oauth2/userinfo`` answers for
any valid session, pasted ones included.
"""

from django.http import HttpRequest

from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.models import Provider, RequestKind
from integrations.sandbox.salesforce.http import host_of


@endpoint(Provider.HUBSPOT, RequestKind.META)
def hubspot_account_details(request: HttpRequest, call: Call) -> Reply:
    return Reply(
        {
            "portalId": int(call.account.external_id),
            "accountType": "STANDARD",
            "timeZone": "UTC",
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
    )


@endpoint(Provider.SALESFORCE, RequestKind.META)
def salesforce_userinfo(request: HttpRequest, call: Call) -> Reply:
    user, org = call.user, call.account.external_id
    base = host_of(request)
    return Reply(
        {
            "sub": f"{base}/id/{org}/{user.crm_user_id}",
            "user_id": user.crm_user_id,
            "organization_id": org,
            "preferred_username": user.email,
            "nickname": user.email.split("@")[0],
            "name": f"{user.first_name} {user.last_name}".strip() or user.email,
            "email": user.email,
            "email_verified": True,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "zoneinfo": "UTC",
            "active": user.is_active,
            "user_type": "STANDARD",
            "urls": {
                "rest": f"{base}/services/data/v{{version}}/",
                "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                "query": f"{base}/services/data/v{{version}}/query/",
            },
        }
    )
