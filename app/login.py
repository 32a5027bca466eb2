"""Optional login with ``st.login`` (OpenID Connect), configured by secrets.

Off unless ``OBSERVATORY_LOGIN`` is set: ``default`` (or ``on``) uses the provider
of the ``[auth]`` section of ``.streamlit/secrets.toml``, any other value the
provider ``[auth.<value>]``.  When it is on, every page asks for a login first, and
a configuration mistake stops the app with a message naming the missing key and the
file (docs/configuration.md, "Dashboard login").
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

from app.ui import md

ENV = "OBSERVATORY_LOGIN"
SECRETS_FILE = ".streamlit/secrets.toml"
GENERAL_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def login_provider() -> str | None:
    """The provider named by ``OBSERVATORY_LOGIN`` (None: login off)."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("", "0", "off", "false", "no"):
        return None
    return "default" if value.lower() in ("on", "1", "true", "yes", "default") else value


def login_problems(secrets: Mapping[str, Any], provider: str) -> list[str]:
    """What is missing from the secrets for ``st.login(provider)``; empty when complete.

    Args:
        secrets: the app's secrets (``st.secrets``), as a mapping.
        provider: ``default`` (keys in ``[auth]``) or a provider name (``[auth.<name>]``).
    """
    if "_" in provider:
        return [f"{ENV}={provider!r}: a provider name cannot contain '_' (Streamlit's rule)."]
    auth = secrets.get("auth")
    if not isinstance(auth, Mapping):
        return [
            f"{ENV} is set but {SECRETS_FILE} has no [auth] section: add redirect_uri, "
            "cookie_secret, client_id, client_secret and server_metadata_url "
            '(docs/configuration.md, "Dashboard login").'
        ]
    problems = [f"[auth] in {SECRETS_FILE} lacks {k!r}." for k in GENERAL_KEYS if k not in auth]
    section_name = "[auth]" if provider == "default" else f"[auth.{provider}]"
    section = auth if provider == "default" else auth.get(provider)
    if not isinstance(section, Mapping):
        problems.append(
            f"{ENV}={provider!r} but {SECRETS_FILE} has no {section_name} section "
            f"with {', '.join(PROVIDER_KEYS)}."
        )
    else:
        problems += [
            f"{section_name} in {SECRETS_FILE} lacks {k!r}."
            for k in PROVIDER_KEYS
            if k not in section
        ]
    if not problems and importlib.util.find_spec("authlib") is None:
        problems.append(
            "Login needs the Authlib package (Streamlit's OIDC client): "
            "`pip install Authlib` in the dashboard's environment."
        )
    return problems


def _secrets() -> Mapping[str, Any]:
    try:
        return {k: st.secrets[k] for k in st.secrets}
    except FileNotFoundError:
        return {}
    except Exception as exc:  # a malformed secrets.toml raises Streamlit's own errors
        st.error(f"Could not read {SECRETS_FILE}: {md(exc)}")
        st.stop()
        raise


def require_login() -> None:
    """When login is on: stop with a clear message on a configuration error, else ask
    for a login and show who is logged in (with a log-out button) in the sidebar."""
    provider = login_provider()
    if provider is None:
        return
    problems = login_problems(_secrets(), provider)
    if problems:
        st.error(
            "Login is switched on but not configured:\n\n"
            + "\n".join(f"- {p}" for p in problems)
            + f"\n\nFix {SECRETS_FILE} or unset {ENV}, then restart the dashboard."
        )
        st.stop()
    if not st.user.is_logged_in:
        st.title("Observatory")
        st.write("Log in to see the dashboard.")
        st.button("Log in", on_click=st.login, args=(provider,), type="primary")
        st.stop()
    who = st.user.get("name") or st.user.get("email") or "you"
    st.sidebar.caption(f"Logged in as {md(who)}")
    st.sidebar.button("Log out", on_click=st.logout)
