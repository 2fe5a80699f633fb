"""Sign-up, sign-in and sign-out, plus who the current request belongs to.

Browsers authenticate with the session cookie (CSRF-checked); API clients with
``Authorization: Bearer <token>``. A request that carries a bearer header is judged by the token
alone, so the cookie can never stand in for a wrong token.

Sessions are signed cookies, which the server cannot delete. So each session also carries the
user's session epoch from sign-in, and it counts only while that epoch is current. Logging out
bumps the epoch: a cookie copied earlier stops working, and so do the user's other sessions
(every device signs out together). ``POST /logout`` with a bearer token revokes that token.

Sign-in and sign-up are throttled with counters in the database (``login_guard.py``,
``signup_guard.py``) before any password is hashed; hashing itself runs in a bounded number of
slots (``hashing.py``). Sign-up is ``off``, ``invite`` (single-use codes) or ``open``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from .errors import api_error
from .extensions import facade, login_guard, signup_guard, user_store, web_settings
from .security import bearer_token, client_address, is_bearer_request
from .typed_ext import LoginManager, current_user, login_user, logout_user
from .users import InvalidInvite, User, UserExists

__all__ = ["admin_required", "bp", "current_user_id", "init_auth", "login_manager", "start_session"]

bp = Blueprint("auth", __name__)
"""Routes: ``/login``, ``/signup``, ``/logout``."""

login_manager = LoginManager()
"""Flask-Login, with the session for browsers and a request loader for bearer tokens."""

F = TypeVar("F", bound=Callable[..., Any])


def init_auth(app: Flask) -> None:
    """Wire Flask-Login into ``app``."""
    login_manager.init_app(app)
    login_manager.user_loader(_load_from_session)
    login_manager.request_loader(_load_from_token)
    login_manager.unauthorized_handler(_unauthorized)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "strong"


_EPOCH = "plushify_epoch"


def _load_from_session(user_id: str) -> User | None:
    if is_bearer_request():
        return None  # a bearer request is judged by its token only
    user = user_store().get(user_id)
    if user is None or session.get(_EPOCH) != user.session_epoch:
        return None  # signed out since this cookie was issued (or issued before epochs existed)
    return user


def _load_from_token(_req: Any) -> User | None:
    token = bearer_token()
    return user_store().by_token(token) if token else None


def _unauthorized() -> BaseResponse:
    if request.path.startswith("/api/") or is_bearer_request():
        return api_error(401, "unauthorized", "Sign in or send a valid bearer token.")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def current_user_id() -> str:
    """The signed-in user's id (views are guarded by ``login_required``)."""
    return str(current_user.get_id())


def admin_required(view: F) -> F:
    """Only signed-in admins may use the view; others get 403 (anonymous: the login page)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not getattr(current_user, "is_admin", False):
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def start_session(user: User) -> None:
    """Sign ``user`` in on a fresh session (nothing from the old one survives: no fixation)."""
    session.clear()
    login_user(user)
    session[_EPOCH] = user.session_epoch
    session.permanent = True


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: "/gallery" yes, "//evil.example" or "https://..." no.
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and "\\" not in target:
            return target
    return url_for("pages.generate")


def _slow_down(template: str, wait: float, message: str, **context: Any) -> BaseResponse:
    flash(message, "error")
    response = current_app.make_response((render_template(template, **context), 429))
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    """Sign in; the error never says whether the username exists."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("pages.generate"))
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")[:100]
    password = request.form.get("password", "")[:1000]
    address = client_address()
    guard = login_guard()
    form = {"next": request.form.get("next", ""), "username": username}
    wait = guard.wait(username, address)
    if wait > 0:
        return _slow_down(
            "login.html",
            wait,
            "Too many sign-in attempts. Please wait a little and try again.",
            **form,
        )
    user = user_store().authenticate(username, password)
    if user is None:
        guard.failed(username, address)
        flash("Incorrect username or password.", "error")
        return render_template("login.html", **form), 401
    guard.succeeded(username, address)
    start_session(user)
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> BaseResponse | tuple[str, int] | str:
    """Create an account with the configured starting credits (``off``: no such page)."""
    settings = web_settings()
    if not settings.allow_signup:
        abort(404)
    credits = int(current_app.config["PLUSHIFY_SIGNUP_CREDITS"])
    invite_only = settings.signup == "invite"
    page = {"credits": credits, "invite_only": invite_only}
    if request.method == "GET":
        return render_template("signup.html", **page)
    username = request.form.get("username", "")[:100]
    password = request.form.get("password", "")[:1000]
    invite = request.form.get("invite_code", "")[:100].strip()
    address = client_address()
    guard = signup_guard()
    wait = guard.wait(address)
    if wait > 0:
        return _slow_down(
            "signup.html",
            wait,
            "Too many sign-up attempts. Please try again later.",
            username=username,
            **page,
        )
    guard.attempted(address)
    try:
        if invite_only and not invite:
            raise InvalidInvite("An invite code is needed to sign up.")
        user = user_store().create(username, password, invite=invite if invite_only else None)
    except (UserExists, InvalidInvite, ValueError) as exc:
        flash(str(exc), "error")
        return render_template("signup.html", username=username, **page), 400
    if credits:
        facade().ledger.grant(user.id, credits, key=f"signup:{user.id}")
    start_session(user)
    flash(f"Welcome, {user.username}! You have {credits} credits to start.", "ok")
    return redirect(url_for("pages.generate"))


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    """Sign out. A browser: end every session of the user (copied cookies too). An API client
    (bearer token): revoke that token (204; 401 if it was not live)."""
    if is_bearer_request():
        token = bearer_token()
        if not token or not user_store().revoke_presented(token):
            return api_error(401, "unauthorized", "Sign in or send a valid bearer token.")
        return current_app.response_class(status=204)
    if current_user.is_authenticated:
        user_store().end_sessions(current_user_id())
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
