"""``snapkeep vm``: create, list, show, start, stop, clone and delete virtual machines.

Power changes, clones and deletions are jobs: the command waits until the VM has reached its new state
(with a progress bar) unless ``--no-wait``. A VM's snapshots are handled by ``snapkeep snapshot ... --vm``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import JsonObject, connect
from snapkeep.cli.job_cmd import NoWaitOption, follow
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.model.types import QuiescePolicy

app = typer.Typer(help="Virtual machines on libvirt: raw sparse disks in the pool.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(metavar="NAME|ID", help="The VM's name or id.")]


def _host_path(path: str | None) -> str | None:
    """A file on the service's host; a relative path is read from the current directory."""
    return None if path is None else os.path.abspath(path)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new VM (also its libvirt domain's name).")],
    vcpus: Annotated[int, typer.Option("--vcpus", metavar="N", help="Virtual CPUs.")] = 1,
    memory: Annotated[str, typer.Option("--memory", help="RAM: bytes, or e.g. 256M, 2G.")] = "256M",
    disks: Annotated[
        list[str] | None,
        typer.Option("--disk", metavar="SIZE", help="A disk of this size, e.g. 1G (repeatable; default one of 1G)."),
    ] = None,
    kernel: Annotated[
        str | None, typer.Option(metavar="PATH", help="Boot this kernel directly (a file on the service's host).")
    ] = None,
    initrd: Annotated[str | None, typer.Option(metavar="PATH", help="The initramfs to boot with --kernel.")] = None,
    cmdline: Annotated[str | None, typer.Option(metavar="STR", help="The kernel command line.")] = None,
    nics: Annotated[int, typer.Option("--nics", metavar="N", help="Network interfaces (new MACs).")] = 1,
    description: Annotated[str, typer.Option(help="Free text shown in listings.")] = "",
    quiesce_policy: Annotated[
        QuiescePolicy,
        typer.Option(help="When a quiesced snapshot finds no answering guest agent: fail, or crash-consistent."),
    ] = QuiescePolicy.FALLBACK,
    agent_timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="How long a guest agent freeze may take.")
    ] = 10.0,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The owning tenant (id, name or path).")] = None,
    nic_networks: Annotated[
        list[str] | None,
        typer.Option(
            "--nic", metavar="NETWORK", help="A NIC on this network of the VM's owner (repeatable; replaces --nics)."
        ),
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag to give it (repeatable).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a VM, stopped, with empty sparse raw disks."""
    body: JsonObject = {
        "name": name,
        "vcpus": vcpus,
        "memory": memory,
        "kernel": _host_path(kernel),
        "initrd": _host_path(initrd),
        "cmdline": cmdline,
        "nics": nics,
        "description": description,
        "quiesce_policy": quiesce_policy.value,
        "agent_timeout": agent_timeout,
        "tenant": tenant,
        "networks": nic_networks or [],
        "tags": tags or [],
    }
    if disks:
        body["disks"] = disks
    vm: JsonObject = connect().post("vms", body=body)
    if as_json:
        render.print_json(vm)
    else:
        render.say(f"VM {vm['name']!r} created ({vm['state']}): {vm['id']}")


def _disks(vm: JsonObject) -> str:
    """``2 (3.0 GiB)``: how many disks and their total size."""
    return f"{len(vm['disks'])} ({render.size(sum(d['size'] for d in vm['disks']))})"


@app.command("list")
def list_vms(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only those this tenant owns itself.")] = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """All VMs, by name, with their state from libvirt."""
    vms = connect().listing("vms", limit=limit, tenant=tenant)
    if as_json:
        render.print_json(vms)
        return
    render.table(
        ["ID", "NAME", "STATE", "VCPUS", "MEMORY", "DISKS", "OWNER", "TAGS"],
        (
            [
                v["id"],
                v["name"],
                v["state"],
                str(v["vcpus"]),
                render.size(v["memory_mib"] << 20),
                _disks(v),
                v["tenant_id"] or "-",
                ",".join(v["tags"]),
            ]
            for v in vms
        ),
    )


def _agent(answers: bool | None) -> str:
    return "-" if answers is None else "answers" if answers else "does not answer"


def _boot(vm: JsonObject) -> list[tuple[str, str]]:
    if vm["boot"] == "firmware":
        return [("boot", "firmware")]
    if vm["kernel"] is None:  # host files: not shown to this caller
        return [("boot", "a kernel on the host (shown to system admins)"), ("cmdline", vm["cmdline"] or "-")]
    return [("kernel", vm["kernel"]), ("initrd", vm["initrd"] or "-"), ("cmdline", vm["cmdline"] or "-")]


def _show(vm: JsonObject) -> None:
    render.details(
        [
            ("id", vm["id"]),
            ("name", vm["name"]),
            ("description", vm["description"]),
            ("state", vm["state"]),
            ("libvirt domain", vm["domain"]),
            ("guest agent", _agent(vm["agent_answers"])),
            ("vcpus", str(vm["vcpus"])),
            ("memory", render.size(vm["memory_mib"] << 20)),
            *_boot(vm),
            *(
                (f"disk {d['target']}", f"{d['path'] or d['file']}  {render.size(d['size'])}  serial {d['serial']}")
                for d in vm["disks"]
            ),
            ("macs", ", ".join(vm["macs"]) or "-"),
            ("networks", ", ".join(n or "user" for n in vm["networks"]) or "-"),
            ("owner", vm["tenant_id"] or "- (the system)"),
            ("tags", ", ".join(vm["tags"]) or "-"),
            ("quiesce policy", vm["quiesce_policy"]),
            ("agent timeout", f"{vm['agent_timeout']:g} s"),
            ("libvirt uuid", vm["domain_uuid"]),
            ("created", render.local_time(vm["created_at"])),
        ]
    )


@app.command("show")
def show(ref: RefArgument, as_json: JsonOption = False) -> None:
    """One VM: its state, disk files, MACs and whether its guest agent answers now."""
    vm: JsonObject = connect().get("vms", ref)
    if as_json:
        render.print_json(vm)
    else:
        _show(vm)


def _reached(result: JsonObject) -> str:
    return f"VM is {result['state']}"


@app.command("start")
def start(ref: RefArgument, no_wait: NoWaitOption = False, as_json: JsonOption = False) -> None:
    """Power a VM on and wait until it runs."""
    api = connect()
    follow(api, api.post("vms", ref, "start"), no_wait=no_wait, as_json=as_json, done=_reached)


@app.command("stop")
def stop(
    ref: RefArgument,
    force: Annotated[bool, typer.Option("--force", help="Power off at once instead of shutting down.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="How long the guest may take to shut down (default 60)."),
    ] = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Shut a VM down gracefully (ACPI) and wait until it is off; fails if it outlasts --timeout."""
    body: JsonObject = {"force": force}
    if timeout is not None:
        body["timeout"] = timeout
    api = connect()
    follow(api, api.post("vms", ref, "stop", body=body), no_wait=no_wait, as_json=as_json, done=_reached)


@app.command("clone")
def clone(
    ref: RefArgument,
    name: Annotated[str, typer.Option("--name", metavar="NEW", help="Name of the new VM.")],
    preserve_macs: Annotated[
        bool, typer.Option("--preserve-macs", help="Keep the source's MACs (default: new ones).")
    ] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """A new, stopped VM from a VM's current disks (crash-consistent; a running VM is paused briefly)."""
    api = connect()
    job: JsonObject = api.post("vms", ref, "clone", body={"name": name, "preserve_macs": preserve_macs})
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda result: f"VM {job['params']['vm']!r} cloned as {result['vm']!r}: {result['vm_id']}",
    )


@app.command("delete")
def delete(
    ref: RefArgument,
    force: Annotated[bool, typer.Option("--force", help="Power the VM off first if it runs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a VM with its disks and all its snapshots (refused while one of them is immutable)."""
    if not yes:
        typer.confirm(f"Delete VM {ref!r}, its disks and all its snapshots?", abort=True)
    api = connect()
    job: JsonObject = api.delete("vms", ref, force=force)
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda _result: f"VM {job['params']['vm']!r} deleted",
    )
