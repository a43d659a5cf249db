"""What an admin pastes as a token travels in a request header (and, for a HubSpot OAuth
token, in a URL path): text that is no token is a form error, and a token never names
another resource."""

import pytest
from django.urls import reverse

from integrations.models import Connection
from integrations.sandbox.models import SandboxRequest


def _paste(crm_setup, workspace, ws_admin, login, token: str):
    return login(ws_admin).post(
        reverse("connections:token"),
        {
            "workspace": workspace.pk,
            "provider": crm_setup.provider,
            "access_token": token,
            "instance_url": crm_setup.base_url,
        },
    )


@pytest.mark.parametrize("token", ["tökén-ünïcode", "pat-na1-☃", "two words", "pat-na1-a\tb"])
def test_it_refuses_a_pasted_value_that_is_no_token(crm_setup, workspace, ws_admin, login, token):
    page = _paste(crm_setup, workspace, ws_admin, login, token)

    assert page.status_code == 200
    assert "that is not a token" in page.content.decode()
    assert not Connection.objects.exists()


def test_a_pasted_token_stays_inside_the_token_lookup(crm_setup, workspace, ws_admin, login):
    page = _paste(crm_setup, workspace, ws_admin, login, "CO../../account-info/v3/details?x=")

    assert "The CRM refused it" in page.content.decode()
    paths = set(SandboxRequest.objects.values_list("path", flat=True))
    assert not {path for path in paths if "account-info" in path and "tokens" not in path}
