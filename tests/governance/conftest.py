"""Policies are configured from real CRM metadata, so these tests reuse the sandbox CRM
connections of tests/integrations."""

from tests.integrations.conftest import crm_settings, crm_setup, rep_user

__all__ = ["crm_settings", "crm_setup", "rep_user"]
