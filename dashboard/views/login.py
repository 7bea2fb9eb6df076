"""Log in through Django's LoginView (it refuses off-site `next` targets), throttled per username+address."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

from ..throttle import LoginForm, answer_throttled


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = False  # a logged-in user without access sees why on the login page

    def form_invalid(self, form):
        return answer_throttled(super().form_invalid(form))
