"""``snapkeep serve``: run the service (REST API, web UI, job runner, expiry sweep) in this process.

With ``--tls-cert`` and ``--tls-key`` (or ``SNAPKEEP_TLS_CERT``/``SNAPKEEP_TLS_KEY``) it serves HTTPS, and the
web UI's session cookies are then Secure. The two go together: one without the other is refused before
anything starts, as is a file that cannot be read.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from snapkeep.config import Settings
from snapkeep.errors import InvalidInput


def serve(
    data_dir: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="State directory (env SNAPKEEP_DATA_DIR; default /var/lib/snapkeep)."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help="Where to listen (env SNAPKEEP_LISTEN; default 127.0.0.1:8470)."),
    ] = None,
    create_loop_pool: Annotated[
        bool,
        typer.Option(
            "--create-loop-pool",
            help="If the data directory is on neither btrfs nor XFS, keep the pool in a loop-mounted btrfs "
            "image there.",
        ),
    ] = False,
    tls_cert: Annotated[
        str | None,
        typer.Option("--tls-cert", metavar="FILE", help="Serve HTTPS with this certificate (PEM; with --tls-key)."),
    ] = None,
    tls_key: Annotated[
        str | None,
        typer.Option("--tls-key", metavar="FILE", help="The certificate's private key (PEM; with --tls-cert)."),
    ] = None,
    rebuild_catalog: Annotated[
        bool,
        typer.Option(
            "--rebuild-catalog",
            help="The catalog was lost: fill the empty catalog from the pool's snapshot manifests before serving "
            "(refused if the catalog holds objects or snapshots).",
        ),
    ] = False,
) -> None:
    """Run the snapkeep service; at first start it writes an admin token to DIR/admin.token."""
    settings = _settings(data_dir=data_dir, listen=listen, tls_cert=tls_cert, tls_key=tls_key)
    check_tls(settings)
    from snapkeep.api.server import serve as run_service  # the server stack loads only for this command

    run_service(settings, create_loop_pool, rebuild_catalog)


def check_tls(settings: Settings) -> None:
    """Both TLS files or neither, and each readable: a clear refusal instead of a server that half starts."""
    given = {"--tls-cert": settings.tls_cert, "--tls-key": settings.tls_key}
    missing = [option for option, path in given.items() if not path]
    if len(missing) == 1:
        raise InvalidInput(
            f"{missing[0]} is missing: HTTPS needs both --tls-cert and --tls-key (or SNAPKEEP_TLS_CERT and "
            "SNAPKEEP_TLS_KEY); give neither to serve plain HTTP"
        )
    for option, path in given.items():
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise InvalidInput(f"{option} {path}: cannot be read ({exc.strerror})", path=path) from None


def _settings(**overrides: Any) -> Settings:
    """The service's settings from the environment, with the command line's ``overrides`` (``None`` = not
    given); a bad value becomes :class:`InvalidInput` naming the setting, not a traceback."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"SNAPKEEP_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"invalid setting: {problems}") from exc
