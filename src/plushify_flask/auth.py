"""Sign-up, sign-in and sign-out, plus who the current request belongs to.

Browsers authenticate with the session cookie (CSRF-checked); API clients with
``Authorization: Bearer <token>``. A request that carries a bearer header is judged by the token
alone, so the cookie can never stand in for a wrong token.

Sessions are signed cookies, which the server cannot delete. So each session also carries the
user's session epoch from sign-in, and it counts only while that epoch is current. Logging out
bumps the epoch: a cookie copied earlier stops working, and so do the user's other sessions
(every device signs out together).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from .errors import api_error
from .extensions import facade, throttle, user_store, web_settings
from .security import is_bearer_request
from .typed_ext import LoginManager, current_user, login_user, logout_user
from .users import User, UserExists

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


def _load_from_token(req: Any) -> User | None:
    header = str(req.headers.get("Authorization", ""))
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return user_store().by_token(token.strip())


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    """Sign in; the error never says whether the username exists."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("pages.generate"))
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")[:100]
    password = request.form.get("password", "")[:1000]
    ip = request.remote_addr or "unknown"
    limiter = throttle()
    if limiter.blocked(ip, username):
        flash("Too many sign-in attempts. Please wait a few minutes and try again.", "error")
        return render_template(
            "login.html", next=request.form.get("next", ""), username=username
        ), 429
    user = user_store().authenticate(username, password)
    if user is None:
        limiter.failed(ip, username)
        flash("Incorrect username or password.", "error")
        return render_template(
            "login.html", next=request.form.get("next", ""), username=username
        ), 401
    limiter.succeeded(username)
    start_session(user)
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> BaseResponse | tuple[str, int] | str:
    """Create an account with the configured starting credits."""
    settings = web_settings()
    if not settings.allow_signup:
        abort(404)
    if request.method == "GET":
        return render_template("signup.html", credits=settings.signup_credits)
    username = request.form.get("username", "")[:100]
    password = request.form.get("password", "")[:1000]
    try:
        user = user_store().create(username, password)
    except (UserExists, ValueError) as exc:
        flash(str(exc), "error")
        return render_template(
            "signup.html", credits=settings.signup_credits, username=username
        ), 400
    if settings.signup_credits:
        facade().ledger.grant(user.id, settings.signup_credits, key=f"signup:{user.id}")
    start_session(user)
    flash(f"Welcome, {user.username}! You have {settings.signup_credits} credits to start.", "ok")
    return redirect(url_for("pages.generate"))


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    """Sign out: end every session of the user (copied cookies too) and drop this one."""
    if current_user.is_authenticated and not is_bearer_request():
        user_store().end_sessions(current_user_id())
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
