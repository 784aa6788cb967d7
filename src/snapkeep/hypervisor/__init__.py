"""The hypervisor layer: snapkeep's VMs as libvirt domains, and their guest agents.

``base.Hypervisor`` is the contract the engine and services use; ``libvirt_host.LibvirtHost`` is its one
driver and the only module that imports libvirt. ``domain_xml`` turns a ``VMSpec`` into domain XML and
back (pure), ``network_xml`` does the same for isolated networks, ``host_routes`` finds the host routes a
new network would clash with, and ``daemons`` starts libvirtd/virtlogd where no systemd does.
"""

from snapkeep.hypervisor.base import Hypervisor

__all__ = ["Hypervisor"]
