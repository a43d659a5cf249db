"""The rep's chat page: their sessions, a conversation with the agent and what it did.

Each turn runs synchronously in the POST (the service always returns a reply, saying in
words what went wrong when the turn could not run), then the page redirects back to the
conversation. Sessions are private to their user: any other id is a 404.
"""

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm_agents.chat.selectors import access_chat_session, chat_sessions_for, conversation
from crm_agents.chat.services import ChatInputError, do_post_chat_message, do_start_chat_session
from crm_agents.chat_models import ChatMessage, ChatSession
from governance.models import CrmProvider, Workspace
from governance.review_models import ChangeProposal
from governance.selectors import workspaces_for_user


def _get_session_for_user(request: HttpRequest, session_id: int) -> ChatSession:
    try:
        return access_chat_session(request.user, session_id)
    except ChatSession.DoesNotExist:
        raise Http404("No such chat.") from None


class NewChatForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=Workspace.objects.none(), empty_label=None)
    provider = forms.ChoiceField(choices=CrmProvider.choices, label="CRM")

    def __init__(self, *args, user: AbstractBaseUser, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        workspaces = workspaces_for_user(user)
        self.fields["workspace"].queryset = workspaces
        if len(workspaces) == 1:
            # One workspace: nothing to choose, so the form only asks for the CRM.
            self.fields["workspace"].initial = workspaces[0]
            self.fields["workspace"].widget = forms.HiddenInput()


class MessageForm(forms.Form):
    # Not required: the service says what is wrong with a message, in one place.
    text = forms.CharField(
        required=False,
        strip=False,
        label="Your message",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "autofocus": True}),
    )


@staff_member_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    return _render_list(request, NewChatForm(user=request.user))


@staff_member_required
@require_POST
def session_start(request: HttpRequest) -> HttpResponse:
    form = NewChatForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            session = do_start_chat_session(
                form.cleaned_data["workspace"], request.user, form.cleaned_data["provider"]
            )
        except ChatInputError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("chat:session", session.pk)
    return _render_list(request, form, status=400)


@staff_member_required
@require_http_methods(["GET", "POST"])
def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_session_for_user(request, session_id)
    form = MessageForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            do_post_chat_message(session, form.cleaned_data["text"], user=request.user)
        except ChatInputError as exc:
            form.add_error("text", str(exc))
            status = 400
        else:
            return redirect("chat:session", session.pk)
    messages = list(conversation(session))
    _show_current_status(session, messages)
    return render(
        request,
        "admin/crm_agents/chat/session.html",
        {
            "title": str(session),
            "session": session,
            "chat_messages": messages,
            "form": form,
            **_admin_context(),
        },
        status=status,
    )


def _render_list(request: HttpRequest, form: NewChatForm, *, status: int = 200) -> HttpResponse:
    return render(
        request,
        "admin/crm_agents/chat/session_list.html",
        {
            "title": "Chat",
            "sessions": chat_sessions_for(request.user),
            "form": form,
            **_admin_context(),
        },
        status=status,
    )


def _show_current_status(session: ChatSession, messages: list[ChatMessage]) -> None:
    """A proposal's status as it is now (a reviewer may have decided it since the reply
    was written), in place of the one the reply recorded; nothing is saved."""
    proposals = ChangeProposal.objects.filter(change_set__chat_session=session).order_by("pk")
    by_pk, by_field = {}, {}
    for proposal in proposals:
        by_pk[proposal.pk] = by_field[(proposal.change_set_id, proposal.field)] = proposal
    for message in messages:
        for proposed in (message.activity or {}).get("proposed") or []:
            proposal = by_pk.get(proposed.get("proposal")) or by_field.get(
                (proposed.get("change_set"), proposed.get("field"))
            )
            if proposal is not None:
                proposed["status_label"] = proposal.get_status_display()


def _admin_context() -> dict:
    return {"site_header": "CRM Steward", "site_title": "CRM Steward", "has_permission": True}
