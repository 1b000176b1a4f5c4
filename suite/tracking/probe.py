"""Is the store there: a scheme MLflow tracks to, a database server or tracking server that answers within
seconds (MLflow and SQLAlchemy themselves retry for minutes before they give up)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

from suite.errors import TrackingError
from suite.tracking.uris import mask

DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}  # database stores MLflow takes
# The stores MLflow 3 tracks to (its file store is gone; databricks needs its own credentials)
STORE_SCHEMES = {"sqlite", "http", "https", "databricks", "databricks-uc", "uc", *DB_PORTS}


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail within seconds on a tracking server or database that does not answer."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0]
    if scheme not in STORE_SCHEMES:
        raise TrackingError(
            f"the MLflow store {mask(uri)} has the scheme '{scheme}://', which is not an MLflow tracking store.",
            hint="use a SQLite file (sqlite:///path/mlflow.db, or just a path), a database (postgresql://, mysql://, "
                 "mssql://) or a tracking server (http://, https://); leave --tracking-uri and MLFLOW_TRACKING_URI "
                 "unset for the local store results/mlflow.db",
        )
    if scheme in DB_PORTS:
        _check_database_port(uri, DB_PORTS[scheme], timeout)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri, timeout)


def _check_database_port(uri: str, default_port: int, timeout: float) -> None:
    """A TCP connection to the database server of a `postgresql://user:pw@host:port/db` store, within `timeout`."""
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port or default_port
    except ValueError:  # a malformed port: let MLflow report it
        return
    if not host:  # a local Unix socket
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise TrackingError(
            f"the database server of the MLflow store {mask(uri)} does not answer at {host}:{port} "
            f"({exc.strerror or type(exc).__name__}).",
            hint="start the database (e.g. `sudo systemctl start postgresql`), or fix --tracking-uri / "
                 "MLFLOW_TRACKING_URI; leave both unset for the local store results/mlflow.db",
        ) from None


def _check_server(uri: str, timeout: float) -> None:
    """The tracking server's `/health` answers (any HTTP status: MLflow reports the rest)."""
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")
                                     + "/health")
    if parts.username:  # credentials in the URI: send them as basic auth, as MLflow's client does
        import base64

        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered; MLflow reports anything else
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"the MLflow tracking server at {mask(uri)} does not answer ({reason}).",
            hint="start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`), or fix --tracking-uri / "
                 "MLFLOW_TRACKING_URI; leave both unset for the local store results/mlflow.db",
        ) from None
