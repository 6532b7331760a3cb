"""Backends: run lowered scenarios on something other than the engine (real KVM under QEMU) and compare."""
