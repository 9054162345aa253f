"""vrouter: a userspace overlay vRouter data plane.

The C tables and packet path live in ``vrouter._ext`` (built from ext/);
the modules here are the Python facades and the node process around them.
"""
__version__ = "0.1.0"
