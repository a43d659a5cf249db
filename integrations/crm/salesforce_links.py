"""How a new Salesforce record is associated with existing ones (profiles.ASSOCIATIONS).

Salesforce relates records through lookup fields and junction records, so one
``associations`` argument of ``create`` becomes up to three kinds of writes:

* a lookup on the new record itself (a new Contact or Opportunity gets ``AccountId``),
  sent with the create; a record has one such parent, so a second one is refused;
* a lookup on the other record (a new Account becomes the ``AccountId`` of existing
  contacts or opportunities), sent afterwards as a collection update;
* a junction record (``OpportunityContactRole`` between an opportunity and a contact),
  sent afterwards as a collection create.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from integrations.crm import errors
from integrations.crm.profiles import SALESFORCE, association_path
from integrations.crm.salesforce_values import PROVIDER
from integrations.crm.types import ObjectType


@dataclass
class Links:
    own_lookups: dict[str, str] = field(default_factory=dict)
    # (other object type, its id) whose link needs the new record's id.
    later: list[tuple[ObjectType, str]] = field(default_factory=list)

    def writes(self, object_type: ObjectType, record_id: str) -> tuple[list[dict], list[dict]]:
        """(junction records to create, records to update) once the record exists."""
        inserts: list[dict] = []
        updates: list[dict] = []
        for to_type, target_id in self.later:
            path, reverse = association_path(object_type, to_type)
            if path.salesforce_lookup:
                updates.append(
                    {
                        "attributes": {"type": SALESFORCE.object_name(to_type)},
                        "id": target_id,
                        path.salesforce_lookup: record_id,
                    }
                )
                continue
            assert path.salesforce_junction is not None
            junction, source_field, target_field = path.salesforce_junction
            source, target = (target_id, record_id) if reverse else (record_id, target_id)
            inserts.append(
                {"attributes": {"type": junction}, source_field: source, target_field: target}
            )
        return inserts, updates


def plan(object_type: ObjectType, associations: Mapping[ObjectType, Sequence[str]]) -> Links:
    links = Links()
    for to_type, target_ids in associations.items():
        path, reverse = association_path(object_type, to_type)
        if path.salesforce_lookup and not reverse:
            if len(target_ids) > 1:
                raise errors.ValidationFailed(
                    f"a {object_type} belongs to one {to_type} ({path.salesforce_lookup})",
                    fields={path.salesforce_lookup: "one value only"},
                    provider=PROVIDER,
                )
            if target_ids:
                links.own_lookups[path.salesforce_lookup] = target_ids[0]
            continue
        links.later.extend((to_type, target_id) for target_id in target_ids)
    return links
