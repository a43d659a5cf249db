"""Build the adapter for a provider. Connection resolution (integrations) is the only
caller in the product; tests and benchmarks use it to reach the sandbox."""

from integrations.crm.base import CrmClient
from integrations.crm.types import Provider


def build_client(
    provider: Provider | str, *, base_url: str, access_token: str, timeout: float = 30.0
) -> CrmClient:
    """A client acting with ``access_token`` against the CRM (or sandbox) at ``base_url``."""
    provider = Provider(provider)
    if provider is Provider.HUBSPOT:
        from integrations.crm.hubspot import HubSpotClient

        return HubSpotClient(access_token, base_url=base_url, timeout=timeout)
    from integrations.crm.salesforce import SalesforceClient

    return SalesforceClient(access_token, base_url=base_url, timeout=timeout)
