"""Adapters at the edges: FRED (fredapi) and the storage block (blob store, run store, model store).

The only modules that do network or storage I/O. They raise the core's typed errors, classified as
transient (worth a retry) or not; they never retry themselves, the stages do.
"""
