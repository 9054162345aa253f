"""The vRouter agent: reads CN2-style intent (``control.agent.intent``) and, later, compiles it into
control-channel requests. Pure Python: imports neither ``vrouter`` nor pyzmq."""
