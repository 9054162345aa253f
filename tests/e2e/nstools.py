"""The namespace helpers of the end-to-end tests, now in the package (vrouter/netns.py)."""
from vrouter.netns import Topology, sh  # noqa: F401
