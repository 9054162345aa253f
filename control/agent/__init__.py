"""The vRouter agent: CN2-style intent (``intent``) compiled to every node's desired state (``compiler``),
pushed over the control channel (``agent``, ``python -m control.agent``); ``demo`` and ``lab`` build the
two-node cluster of ``vrouter demo``; ``expect`` says from the intent alone what traffic should do."""
