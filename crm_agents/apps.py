from django.apps import AppConfig


class CrmAgentsConfig(AppConfig):
    name = "crm_agents"
    verbose_name = "Agent"
