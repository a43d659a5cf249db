"""A rep's own connection never returns or writes a record outside the rep's access.

Salesforce enforces it natively (the sandbox user has owned access); HubSpot does not, so
CRM Steward applies the policy's level for the rep's role. Checked against the sandbox's
request log: nothing outside the access is ever written.
"""

import pytest

from governance.models import Policy, RecordAccess
from integrations.connections import Purpose, resolve_connection
from integrations.crm import errors
from integrations.crm.base import search_all
from integrations.crm.types import ObjectType, SearchQuery
from integrations.models import ConnectionScope
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRequest

DEAL, COMPANY = ObjectType.DEAL, ObjectType.COMPANY


@pytest.fixture
def deals(crm_setup):
    account = crm_setup.account
    acme = seed.add_record(account, COMPANY, {"name": "Acme"}, owner=crm_setup.rep)
    return {
        "own": seed.add_record(
            account, DEAL, {"name": "Riley's deal"}, owner=crm_setup.rep, associations=[acme]
        ),
        "team": seed.add_record(
            account, DEAL, {"name": "Morgan's deal"}, owner=crm_setup.teammate, associations=[acme]
        ),
        "other": seed.add_record(
            account, DEAL, {"name": "Sam's deal"}, owner=crm_setup.stranger, associations=[acme]
        ),
        "acme": acme,
    }


def _rep_client(crm_setup, workspace, rep_user):
    crm_setup.connect(workspace, ConnectionScope.USER, crm_setup.rep, user=rep_user)
    return resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user).client()


def _written(crm_setup) -> dict:
    merged: dict = {}
    for written in SandboxRequest.objects.filter(account=crm_setup.account).values_list(
        "written", flat=True
    ):
        merged.update(written)
    return merged


def test_a_rep_reads_only_their_own_records(crm_setup, deals, workspace, rep_user):
    client = _rep_client(crm_setup, workspace, rep_user)
    name = client.profile.native_field(DEAL, "name")

    found = search_all(client, SearchQuery(DEAL, properties=(name,)))

    assert [record.id for record in found] == [deals["own"].crm_id]
    assert client.get(DEAL, deals["own"].crm_id, [name]).properties[name] == "Riley's deal"
    for hidden in ("team", "other"):
        with pytest.raises(errors.NotFound):
            client.get(DEAL, deals[hidden].crm_id, [name])
    many = client.get_many(DEAL, [deals["other"].crm_id, deals["own"].crm_id], [name])
    assert [record.id for record in many] == [deals["own"].crm_id]
    assert client.associated_ids(COMPANY, deals["acme"].crm_id, DEAL) == [deals["own"].crm_id]


def test_a_rep_sees_only_their_own_deals_through_associations_many(
    crm_setup, deals, workspace, rep_user
):
    client = _rep_client(crm_setup, workspace, rep_user)
    acme = deals["acme"].crm_id

    found = client.associations_many(COMPANY, [acme], DEAL)

    assert found == {acme: [deals["own"].crm_id]}


def test_a_rep_cannot_write_outside_their_access(crm_setup, deals, workspace, rep_user):
    client = _rep_client(crm_setup, workspace, rep_user)
    next_step = client.profile.native_field(DEAL, "next_step")

    with pytest.raises((errors.NotFound, errors.PermissionDenied)):
        client.update(DEAL, deals["other"].crm_id, {next_step: "Hijacked"})
    # A batch writes what the access allows; refused records are absent from the results.
    results = client.update_many(
        DEAL,
        {deals["other"].crm_id: {next_step: "Hijacked"}, deals["own"].crm_id: {next_step: "Fine"}},
    )
    assert results.ids() == [deals["own"].crm_id]
    assert isinstance(
        results.failed[deals["other"].crm_id], errors.NotFound | errors.PermissionDenied
    )
    client.update(DEAL, deals["own"].crm_id, {next_step: "Send the MSA"})

    written = _written(crm_setup)
    assert deals["other"].crm_id not in written
    assert set(written) == {deals["own"].crm_id}


def test_a_rep_cannot_hand_a_record_to_someone_else_on_hubspot(
    crm_setup, deals, workspace, rep_user
):
    if crm_setup.provider != "hubspot":
        pytest.skip("Salesforce decides ownership transfers itself")
    client = _rep_client(crm_setup, workspace, rep_user)
    owner = client.profile.native_field(DEAL, "owner")

    with pytest.raises(errors.PermissionDenied, match="record access"):
        client.update(DEAL, deals["own"].crm_id, {owner: crm_setup.stranger.owner_id})
    created = client.create(DEAL, {client.profile.native_field(DEAL, "name"): "New"})

    assert client.get(DEAL, created.id, [owner]).properties[owner] == crm_setup.rep.owner_id
    assert deals["own"].crm_id not in _written(crm_setup)


def test_team_access_lets_a_rep_see_the_teams_records_on_hubspot(
    crm_setup, deals, workspace, rep_user
):
    if crm_setup.provider != "hubspot":
        pytest.skip("Salesforce applies its own sharing (the sandbox user is owned-only)")
    Policy.objects.create(
        workspace=workspace, provider="hubspot", hubspot_access_member=RecordAccess.TEAM
    )
    client = _rep_client(crm_setup, workspace, rep_user)

    found = {record.id for record in search_all(client, SearchQuery(DEAL))}

    assert found == {deals["own"].crm_id, deals["team"].crm_id}


def test_the_workspace_connection_sees_everything(crm_setup, deals, workspace, ws_admin):
    crm_setup.connect(workspace, ConnectionScope.WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    client = resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW).client()

    found = {record.id for record in search_all(client, SearchQuery(DEAL))}

    assert found == {deals["own"].crm_id, deals["team"].crm_id, deals["other"].crm_id}


def test_team_access_sees_the_team_and_nobody_else_on_both_crms(
    crm_setup, deals, workspace, rep_user
):
    # Salesforce shares by the CRM user's own team access; HubSpot by the policy's level.
    Policy.objects.create(
        workspace=workspace, provider=crm_setup.provider, hubspot_access_member=RecordAccess.TEAM
    )
    crm_setup.connect(workspace, ConnectionScope.USER, crm_setup.teammate, user=rep_user)
    client = resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user).client()
    next_step = client.profile.native_field(DEAL, "next_step")

    found = {record.id for record in search_all(client, SearchQuery(DEAL))}
    with pytest.raises((errors.NotFound, errors.PermissionDenied)):
        client.update(DEAL, deals["other"].crm_id, {next_step: "Hijacked"})

    assert found == {deals["own"].crm_id, deals["team"].crm_id}
    assert deals["other"].crm_id not in _written(crm_setup)
