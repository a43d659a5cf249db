from rest_framework.routers import SimpleRouter

from crm_agents.api import schema  # noqa: F401  (registers the auth schemes)
from crm_agents.api.chat_views import ChatSessionViewSet
from crm_agents.api.review_views import ChangeProposalViewSet, ChangeSetViewSet
from crm_agents.api.token_views import ApiTokenViewSet
from crm_agents.api.views import CallViewSet, RunViewSet, WorkflowViewSet

router = SimpleRouter()
router.register("calls", CallViewSet, basename="call")
router.register("runs", RunViewSet, basename="run")
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("change-sets", ChangeSetViewSet, basename="change-set")
router.register("proposals", ChangeProposalViewSet, basename="proposal")
router.register("tokens", ApiTokenViewSet, basename="api-token")
router.register("chat-sessions", ChatSessionViewSet, basename="chat-session")
urlpatterns = router.urls
