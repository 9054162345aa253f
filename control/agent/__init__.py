"""The vRouter agent: CN2-style intent (``intent``) compiled to every node's desired state (``compiler``),
pushed over the control channel (``agent``, ``python -m control.agent``). The demo's cluster and its
expected matrix live in ``control.lab``."""
