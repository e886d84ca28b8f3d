"""The physical twin: the emulated network (Mininet, Open vSwitch), delay elements, faults, cleanup."""
