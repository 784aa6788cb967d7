"""``snapkeep network``: virtual networks (isolated; realised on the host when a VM on one starts)."""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import JsonObject, connect
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.errors import InvalidInput

app = typer.Typer(help="Virtual networks of the system or of a tenant.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(metavar="NAME|ID", help="The network's name or id.")]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="The owning tenant (id, name or path).")]


def _show(n: JsonObject) -> None:
    render.details(
        [
            ("id", n["id"]),
            ("name", n["name"]),
            ("owner", n["tenant_id"] or "- (the system)"),
            ("cidr", n["cidr"]),
            ("dhcp", "on" if n["dhcp"] else "off"),
            ("description", n["description"]),
            ("created", render.local_time(n["created_at"])),
        ]
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new network (unique within its owner).")],
    cidr: Annotated[str, typer.Option("--cidr", help="A private IPv4 network address, e.g. 10.0.0.0/24.")],
    dhcp: Annotated[bool, typer.Option("--dhcp/--no-dhcp", help="Hand out addresses to guests.")] = True,
    description: Annotated[str, typer.Option(help="Free text shown in listings.")] = "",
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Define a network."""
    body = {"name": name, "cidr": cidr, "dhcp": dhcp, "description": description, "tenant": tenant}
    network: JsonObject = connect().post("networks", body=body)
    if as_json:
        render.print_json(network)
    else:
        render.say(f"network {network['name']!r} ({network['cidr']}) created: {network['id']}")


@app.command("list")
def list_networks(tenant: TenantOption = None, limit: LimitOption = None, as_json: JsonOption = False) -> None:
    """Every network you see (with --tenant, that tenant's own)."""
    networks = connect().listing("networks", limit=limit, tenant=tenant)
    if as_json:
        render.print_json(networks)
        return
    render.table(
        ["ID", "NAME", "CIDR", "DHCP", "OWNER", "DESCRIPTION"],
        (
            [n["id"], n["name"], n["cidr"], "on" if n["dhcp"] else "off", n["tenant_id"] or "-", n["description"]]
            for n in networks
        ),
    )


@app.command("show")
def show(ref: RefArgument, as_json: JsonOption = False) -> None:
    """One network."""
    network: JsonObject = connect().get("networks", ref)
    if as_json:
        render.print_json(network)
    else:
        _show(network)


@app.command("update")
def update(
    ref: RefArgument,
    name: Annotated[str | None, typer.Option(help="Rename the network.")] = None,
    cidr: Annotated[str | None, typer.Option(help="A new address range.")] = None,
    dhcp: Annotated[bool | None, typer.Option("--dhcp/--no-dhcp", help="Turn DHCP on or off.")] = None,
    description: Annotated[str | None, typer.Option(help="Replace the description.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a network (a realised one is redefined on the host; refused while running VMs use it)."""
    body = {
        k: v for k, v in {"name": name, "cidr": cidr, "dhcp": dhcp, "description": description}.items() if v is not None
    }
    if not body:
        raise InvalidInput("nothing to change: give --name, --cidr, --dhcp/--no-dhcp or --description")
    network: JsonObject = connect().patch("networks", ref, body=body)
    if as_json:
        render.print_json(network)
    else:
        _show(network)


@app.command("delete")
def delete(
    ref: RefArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a network (refused while a VM's NIC is on it)."""
    if not yes:
        typer.confirm(f"Delete network {ref!r}?", abort=True)
    connect().request("DELETE", "networks", ref)
    render.say(f"network {ref!r} deleted")
