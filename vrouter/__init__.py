"""vrouter: a userspace overlay vRouter data plane.

The C tables and packet path live in ``vrouter._ext`` (built from ext/);
the modules here are the Python facades and the node process around them.
"""
from control.version import __version__  # noqa: F401 - the distribution's one version
