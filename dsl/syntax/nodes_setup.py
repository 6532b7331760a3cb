"""AST nodes of the set-up sentences (`profile`, `mode`, `code at` …). Part of `dsl.syntax.ast`."""

from __future__ import annotations

from typing import TypeAlias

import attrs

from dsl.engine.vocab import PageTable
from dsl.errors import Loc
from dsl.syntax.nodes import Code, Name, VectorRef, Vmcb

# --- set-up -----------------------------------------------------------------------------------------------------


@attrs.frozen
class ProfileSetting:
    """`profile amd-nrips`: the hardware profile."""

    profile: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PoliciesSetting:
    """`policies kvm-5.19, kvm-6.0` (or `policy kvm-6.0`): the hypervisor policies the scenario runs under."""

    policies: tuple[Name, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class NripsSetting:
    """`nrips 1` / `nrips 0`: the kvm_amd module parameter (effective value)."""

    enabled: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PagingSetting:
    """`paging shadow` / `paging npt`: how L0 virtualizes guest memory (npt=0 / npt=1)."""

    paging: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ProtectionSetting:
    """`protection sev-es`: guest protection none / sev / sev-es / sev-snp."""

    protection: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class VariantSetting:
    """`variant seed-as-committed`: a policy variant (the seed as first committed, K-6.0-20)."""

    variant: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ReadingSetting:
    """`int-n reading B`: which reading of K-6.19-6 (INT n with n ≥ 0x80) to apply, `A` or `B`."""

    reading: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class GuestDebugSetting:
    """`guest debug sw-bp`: KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_USE_SW_BP (L0 intercepts #BP, K-5.19-20)."""

    mode: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ModeSetting:
    """`mode protected32`: the guest CPU mode."""

    mode: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CsBaseSetting:
    """`cs base 0x10000`: the CS segment base in the VMCB save area."""

    base: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class RipSetting:
    """`rip 0x1000`: the guest RIP before the first step."""

    rip: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class RflagsSetting:
    """`rflags 0x202` or `rflags IF OF`: RFLAGS as a value, or the flags set by name (others clear, bit 1 set)."""

    value: int | None
    flags: tuple[Name, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class InterruptShadowSetting:
    """`interrupt shadow sti` / `mov-ss` / `none`: the one-instruction interrupt shadow (H-35)."""

    shadow: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CplSetting:
    """`cpl 3`: the current privilege level."""

    cpl: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class GifSetting:
    """`gif 0`: the global interrupt flag."""

    gif: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class BreakpointSetting:
    """`breakpoint dr0 at 0x1000`: an enabled DR7 instruction breakpoint."""

    register: Name
    address: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PageSetting:
    """`page 0x7000 not present in host`: presence of the page holding an address in guest or L0 tables."""

    address: int
    present: bool
    tables: PageTable
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class IdtGateSetting:
    """`idt gate #BP not present`, `idt gate 0x80 dpl 3 type trap`: one IDT gate's attributes.

    Unspecified attributes keep the profile's default (present, DPL 3 for the soft vectors, interrupt gate).
    """

    vector: VectorRef
    present: bool
    dpl: int | None
    gate_type: Name | None
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class VmcbFieldSetting:
    """`vmcb next_rip 0x1000` (stale), `vmcb12 event_inj 0x80000303`, `vmcb02 cs_base 0`: a VMCB field's value."""

    vmcb: Vmcb
    field: Name
    value: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class L1FeatureSetting:
    """`l1 with nrips` / `l1 without shstk`: a CPUID feature as seen by the nested hypervisor L1."""

    feature: Name
    present: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class L1InterceptSetting:
    """`l1 intercepts #PF, #UD, nmi, hlt`: what L1 intercepts for L2 (exceptions by vector, other exits by name)."""

    intercepts: tuple[Name, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CodeSetting:
    """`code at 0x1000: int3` or `code at 0x3000: bytes 2e cd 80`: guest memory holds this code."""

    address: int
    code: Code
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


Setting: TypeAlias = (
    ProfileSetting
    | PoliciesSetting
    | NripsSetting
    | PagingSetting
    | ProtectionSetting
    | VariantSetting
    | ReadingSetting
    | GuestDebugSetting
    | ModeSetting
    | CsBaseSetting
    | RipSetting
    | RflagsSetting
    | InterruptShadowSetting
    | CplSetting
    | GifSetting
    | BreakpointSetting
    | PageSetting
    | IdtGateSetting
    | VmcbFieldSetting
    | L1FeatureSetting
    | L1InterceptSetting
    | CodeSetting
)
