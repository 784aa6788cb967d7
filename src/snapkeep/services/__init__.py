"""Services hold the rules of SPEC §2-5; every interface and the scheduler call them alike.

Every method that acts for someone takes the caller, ``who`` (a :class:`~snapkeep.model.principal.Principal`:
a role and a scope), and checks the role first thing; snapkeep acting on its own (the scheduler, the
reconciler, the expiry sweep) passes :data:`~snapkeep.model.principal.SYSTEM`. Lookups go through the
catalog in the caller's scope, so whatever lies outside a tenant's subtree is :class:`~snapkeep.errors.NotFound`
to it, exactly as a missing object; a role too low is :class:`~snapkeep.errors.Forbidden`. An operation that
runs as a job has a ``submit_<operation>`` method that claims, checks and submits, so a refusal answers at
once and changes nothing.

Which role each operation needs (roles rank viewer < operator < admin):

============================================================  ==========  ==========================
operation                                                     role        where
============================================================  ==========  ==========================
list, show, find: volumes, VMs, snapshots, jobs               viewer      (any token; its scope only)
browse a snapshot's files                                     viewer      ``Files.browse``
read the audit log                                            viewer      system scope only
create, update, delete a volume                               operator    ``Volumes``
create, start, stop, delete a VM                              operator    ``VMs``
clone a VM                                                    operator    ``Clones.clone``
create a VM that boots a host kernel or initrd                admin       ``VMs.create``
take, delete a snapshot; measure its space                    operator    ``Snapshots``
extract files from a snapshot                                 operator    ``Files.extract``
restore a snapshot (over its source or as new)                operator    ``Restores``
unlock an immutable snapshot                                  admin       ``Snapshots.unlock``
run the expiry sweep                                          admin       ``Snapshots.sweep_expired``
see host paths (a volume's ``path``)                          admin       system scope only
list, show tenants, networks, tags, a tenant's settings       viewer      (its scope only)
create, update, start, stop tenants (beneath the caller's)    operator    ``Tenants``
create a tenant under the system; delete a top-level tenant   admin       system scope only
delete a tenant (never the caller's own)                      operator    ``Tenants.submit_delete``
create, update, delete networks; add, remove tags             operator    ``Networks``, ``Tags``
change a tenant's settings                                    operator    ``SettingDocs.patch``
change the system's settings (any of its roles reads them)    admin       system scope only
make, list, revoke tokens (of at most the caller's role)      operator    ``Tokens``
============================================================  ==========  ==========================
"""
