"""The test lab: a cluster of vrouter nodes in network namespaces on this machine, for `vrouter demo` and
the end-to-end tests. ``netns`` (namespaces, links, addresses, routes: unique names, always removed),
``lab`` (nodes, pods, responders, probes), ``expect`` (what the intent says traffic should do) and
``demo`` (`python -m control.lab`, `vrouter demo`). Nodes run only as `vrouter run` processes: nothing
here imports the node's code."""
