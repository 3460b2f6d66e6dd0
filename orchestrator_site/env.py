"""Typed readers for settings that come from the environment.

Each helper fails loudly (ImproperlyConfigured) on a value it cannot parse,
so a typo in a deployment stops the process at start-up instead of being
silently ignored.
"""

import ipaddress
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"The environment variable {name} is required.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {value!r}.")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """``name`` as a whole number within the bounds; ``environ`` instead of os.environ (scripts/run.py's)."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}.") from None
    too_small = minimum is not None and number < minimum
    too_large = maximum is not None and number > maximum
    if too_small or too_large:
        if minimum is not None and maximum is not None:
            bound = f"between {minimum} and {maximum}"
        else:
            bound = f"at least {minimum}" if minimum is not None else f"at most {maximum}"
        raise ImproperlyConfigured(f"{name} must be {bound}, got {number}.")
    return number


def env_decimal(name: str, default: str, *, minimum: str, maximum: str) -> Decimal:
    value = os.environ.get(name, default)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from None
    if not number.is_finite() or not Decimal(minimum) <= number <= Decimal(maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value!r}.")
    return number


def env_choice(name: str, default: str, *, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name} must be one of {', '.join(c or '(empty)' for c in choices)}, got {value!r}."
        )
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip()
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        allowed = ", ".join(schemes)
        raise ImproperlyConfigured(
            f"{name} must be a URL with one of the schemes {allowed}, got {redact_url(value)!r}."
        )
    return value


def redact_url(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# EMAIL_URL schemes: the Django backend each selects, the default port, and the TLS mode of an SMTP URL.
_EMAIL_SCHEMES = {
    "smtp": ("django.core.mail.backends.smtp.EmailBackend", 25, ""),
    "smtp+tls": ("django.core.mail.backends.smtp.EmailBackend", 587, "tls"),  # STARTTLS
    "smtp+ssl": ("django.core.mail.backends.smtp.EmailBackend", 465, "ssl"),  # TLS from the first byte
    "console": ("django.core.mail.backends.console.EmailBackend", None, ""),
    "locmem": ("django.core.mail.backends.locmem.EmailBackend", None, ""),
}


def env_email_url(name: str) -> dict[str, object] | None:
    """Django's EMAIL_* settings from one URL (``smtp+tls://user:pass@host:587``); None when unset or empty.

    The user and password may be percent-encoded (``%40`` for ``@``). console:// and locmem://
    take nothing after the scheme. Errors never show the password.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    shown = redact_url(value) if "://" in value else value
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in _EMAIL_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in _EMAIL_SCHEMES)
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}, got {shown!r}.")
    backend, default_port, tls = _EMAIL_SCHEMES[scheme]
    parts = urlsplit(value)
    if default_port is None:
        if value.lower().rstrip("/") != f"{scheme}:":
            raise ImproperlyConfigured(f"{name}: {scheme}:// takes no host, path or options, got {shown!r}.")
        return {"EMAIL_BACKEND": backend}
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name} takes no path or options (write smtp+tls:// for TLS), got {shown!r}.")
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} needs a host ({scheme}://user:password@host:port), got {shown!r}.")
    try:
        port = default_port if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ImproperlyConfigured(f"{name} has a port that is not a number from 1 to 65535: {shown!r}.")
    if parts.password is not None and not parts.username:
        raise ImproperlyConfigured(f"{name} has a password but no user name: {shown!r}.")
    return {
        "EMAIL_BACKEND": backend,
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": tls == "tls",
        "EMAIL_USE_SSL": tls == "ssl",
    }


def env_ip_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8, ::1``); empty when unset.

    Strict: a network with host bits set (``10.0.0.1/8``) is refused rather than silently widened.
    """
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated IP addresses or CIDR networks (e.g. 10.0.0.0/8), got {item!r}."
            ) from None
    return networks


WORKER_CONCURRENCY_MAX = 64


def default_worker_concurrency() -> int:
    """Worker processes when WORKER_CONCURRENCY is unset: twice the CPUs this process may use, 4 to 16.

    A step spends most of its time waiting on the model, not on a CPU, so more processes than CPUs keep
    parallel branches of a plan running side by side (a 4-branch plan took 1.98x its critical path on 2
    processes, 1.01x on 4). At least 4 so one such plan fits even on a small machine; at most 16 because
    every process is a whole Django and agent runtime (memory) and the sandboxed test runs do use a CPU.
    """
    try:
        cpus = len(os.sched_getaffinity(0))  # the CPUs we may run on (taskset, cpusets), not the machine's
    except AttributeError:  # macOS has no sched_getaffinity
        cpus = os.cpu_count() or 1
    return min(16, max(4, 2 * cpus))


def env_worker_concurrency(environ: Mapping[str, str] | None = None) -> int:
    """How many tasks one Celery worker runs at once: WORKER_CONCURRENCY (1-64) or the default above."""
    return env_int(
        "WORKER_CONCURRENCY",
        default_worker_concurrency(),
        minimum=1,
        maximum=WORKER_CONCURRENCY_MAX,
        environ=environ,
    )
