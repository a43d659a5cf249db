"""The policy's rules, as the guard will ask them: scopes, whitelists, review modes."""

import pytest
from django.core.exceptions import ValidationError

from governance.models import ObjectScope, Policy, ReviewMode
from tests.factories import ConnectionFactory, CrmPropertyFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(workspace):
    return ConnectionFactory(workspace=workspace)


@pytest.fixture
def policy(workspace):
    return PolicyFactory(workspace=workspace)


def prop(connection, object_type: str, name: str, **fields):
    return CrmPropertyFactory(
        workspace=connection.workspace,
        connection=connection,
        object_type=object_type,
        name=name,
        **fields,
    )


def test_it_defaults_to_reading_everything_and_writing_nothing(policy):
    assert Policy.objects.get(pk=policy.pk).review_overrides == {
        "stage": "review",
        "amount": "review",
        "close_date": "review",
    }
    for object_type in ("company", "contact", "deal"):
        assert policy.object_scope(object_type) == ObjectScope.READ
        assert policy.may_read(object_type, "anything")
        assert not policy.may_write(object_type, "anything")
    assert not any(
        [
            policy.allow_create,
            policy.allow_stage_change,
            policy.allow_update_closed,
            policy.allow_clear_values,
            policy.allow_create_associations,
            policy.dry_run,
            policy.paused,
        ]
    )
    assert policy.review_default == ReviewMode.REVIEW


def test_it_puts_unknown_objects_out_of_scope(policy):
    assert policy.object_scope("lead") == ObjectScope.NONE
    assert not policy.may_read("lead", "email")


def test_it_reads_nothing_of_an_object_out_of_scope(policy):
    policy.company_scope = ObjectScope.NONE

    assert not policy.may_read("company", "name")
    assert policy.may_read("deal", "amount")


def test_a_read_whitelist_limits_reads_of_its_object_only(policy, connection):
    policy.read_properties.add(prop(connection, "deal", "amount"))

    assert policy.may_read("deal", "amount")
    assert not policy.may_read("deal", "dealname")
    assert policy.may_read("contact", "email")  # no contact chosen: all readable


def test_a_read_whitelist_of_missing_properties_does_not_widen_to_everything(policy, connection):
    policy.read_properties.add(prop(connection, "deal", "gone", missing=True))

    assert not policy.may_read("deal", "amount")


def test_it_writes_only_whitelisted_properties_of_read_write_objects(policy, connection):
    amount = prop(connection, "deal", "amount", type="number")
    policy.write_properties.add(amount)
    assert not policy.may_write("deal", "amount")  # deal scope is still read

    policy.deal_scope = ObjectScope.READ_WRITE

    assert policy.may_write("deal", "amount")
    assert not policy.may_write("deal", "dealname")
    assert not policy.may_write("company", "amount")


def test_it_never_writes_what_it_may_not_read(policy, connection):
    policy.deal_scope = ObjectScope.READ_WRITE
    policy.read_properties.add(prop(connection, "deal", "dealname"))
    policy.write_properties.add(prop(connection, "deal", "amount"))

    assert not policy.may_write("deal", "amount")


@pytest.mark.parametrize("flag", ["missing", "read_only"])
def test_it_never_writes_missing_or_read_only_properties(policy, connection, flag):
    policy.deal_scope = ObjectScope.READ_WRITE
    policy.write_properties.add(prop(connection, "deal", "amount", **{flag: True}))

    assert not policy.may_write("deal", "amount")


def test_it_answers_from_prefetched_whitelists_without_queries(
    policy, connection, django_assert_num_queries
):
    policy.deal_scope = ObjectScope.READ_WRITE
    policy.save()
    policy.write_properties.add(prop(connection, "deal", "amount"))
    fetched = Policy.objects.prefetch_related("read_properties", "write_properties").get()

    with django_assert_num_queries(0):
        assert fetched.may_write("deal", "amount")
        assert fetched.may_read("deal", "dealname")


def test_stage_amount_and_close_date_are_reviewed_unless_set_to_auto(policy):
    policy.review_default = ReviewMode.AUTO
    policy.review_overrides = {"amount": "auto", "next_step": "review"}

    assert policy.review_mode_for("amount") == ReviewMode.AUTO
    assert policy.review_mode_for("stage") == ReviewMode.REVIEW
    assert policy.review_mode_for("close_date") == ReviewMode.REVIEW
    assert policy.review_mode_for("next_step") == ReviewMode.REVIEW
    assert policy.review_mode_for("description") == ReviewMode.AUTO


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["amount"], 'Review overrides must be a JSON object such as {"amount": "review"}.'),
        (
            {"Amount": "auto"},
            "Review override 'Amount' is not a canonical field name: use lower snake case "
            "such as close_date or pain_points.",
        ),
        (
            {"amount": "always"},
            "Review override for 'amount' is 'always'; it must be one of \"auto\", \"review\".",
        ),
    ],
)
def test_it_rejects_malformed_review_overrides_naming_the_culprit(policy, overrides, message):
    policy.review_overrides = overrides

    with pytest.raises(ValidationError) as caught:
        policy.full_clean()

    assert caught.value.message_dict == {"review_overrides": [message]}


def test_it_describes_properties_and_flags_missing_ones(connection):
    amount = prop(connection, "deal", "amount", label="Amount", type="number")

    assert str(amount) == "Amount (amount, number)"
    assert amount.choice_label() == "deal · Amount (amount, number)"
    amount.missing = True
    assert str(amount) == "Amount (amount, number) — no longer in the CRM"


def test_history_records_who_changed_the_write_whitelist(policy, connection, revops):
    amount = prop(connection, "deal", "amount")
    policy._history_user = revops
    policy.write_properties.add(amount)

    latest = policy.history.latest()
    assert latest.history_user == revops
    assert [row.crmproperty for row in latest.write_properties.all()] == [amount]
