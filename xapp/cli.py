"""`ranpd xapp`: the E2 stream server and the REST API (processes and threads: see xapp/server.py)."""
from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import click


def settings_error(exc: Exception) -> str:
    """One line naming each bad setting (its RANPD_XAPP_* or RANPD_XAPP_E2_* variable) and why it was refused."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return f"cannot read the xApp settings: {exc}"
    prefix = {"XappSettings": "RANPD_XAPP_", "E2Limits": "RANPD_XAPP_E2_"}.get(exc.title)
    if prefix is None:                       # the descriptor (config-file.json) itself is invalid
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        text = f"the xApp descriptor is invalid: {'; '.join(parts)}"
    else:
        parts = [f"{e['loc'][0]}={'***' if 'token' in str(e['loc'][0]) else repr(e['input'])} "
                 f"({prefix}{str(e['loc'][0]).upper()}): {e['msg']}" if e["loc"] else e["msg"]
                 for e in exc.errors()]
        text = f"invalid xApp setting {'; '.join(parts)}"
    return " ".join(text.split())


def check_port_free(host: str, port: int, what: str) -> None:
    """Fail with one line when `host:port` cannot be bound (in use, or not an address of this host)."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as the servers bind
            probe.bind(address)
    except OSError as exc:
        raise click.ClickException(f"cannot listen for {what} on {host}:{port}: "
                                   f"{exc.strerror or exc}") from exc


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX student with its card beside it (X.onnx + X.card.json). "
                   "Default: RANPD_XAPP_MODEL_PATH, else the shipped student.")
@click.option("--e2-port", type=int, help="E2 stream port (default from config-file.json: 36421).")
@click.option("--http-port", type=int, help="REST port (default from config-file.json: 8080).")
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 in a container).")
@click.option("--bler-target", metavar="{T|max}", help="Operator first-tx BLER target of every E2 node, in "
              "(0, 1), or 'max' (throughput mode); default 0.1. PUT /ric/v1/config/bler-target changes it.")
def xapp(model_path: Path | None, e2_port: int | None, http_port: int | None, host: str | None,
         bler_target: str | None) -> None:
    """Start the link-adaptation xApp.

    E2 nodes connect to the E2 port (frames: 4-byte big-endian length + ranpd.e2.Envelope),
    set up, subscribe to RAN function 2 (per-slot INSERT) and get one RIC Control with the MCS
    of every scheduled UE per indication. REST under /ric/v1: health/alive, health/ready,
    config, config/bler-target (GET; PUT with the admin bearer token), metrics, model (GET card;
    PUT upload with the admin bearer token), decide; the OpenAPI document is at /openapi.json.
    Every setting can also come from RANPD_XAPP_* variables.
    """
    from ranpd.xapp.budgets import E2Limits
    from ranpd.xapp.config import XappSettings
    from ranpd.xapp.model import ModelError
    from ranpd.xapp.server import serve_xapp
    from ranpd.xapp.service import load_configured_model

    overrides = {k: v for k, v in dict(model_path=model_path, e2_port=e2_port, http_port=http_port,
                                       host=host, bler_target=bler_target).items() if v is not None}
    try:
        settings = XappSettings(**overrides)
        limits = E2Limits()
    except (ValueError, OSError) as exc:         # pydantic's ValidationError is a ValueError
        raise click.ClickException(settings_error(exc)) from exc
    check_port_free(settings.host, settings.e2_port, "E2")
    check_port_free(settings.host, settings.http_port, "REST")
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        model = load_configured_model(settings)
    except ModelError as exc:
        raise click.ClickException(f"cannot serve model: {exc}") from exc

    async def main() -> None:
        async with serve_xapp(settings, model, limits=limits) as running:
            click.echo(f"xApp ready: E2 {settings.host}:{running.e2_port}, "
                       f"REST http://{settings.host}:{running.http_port}/ric/v1 (Ctrl-C stops)", err=True)
            await running.stopped()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:          # e.g. a port taken between the check above and the bind
        raise click.ClickException(f"the xApp could not serve: {exc}") from exc
