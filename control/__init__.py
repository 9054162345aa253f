"""The vRouter's control channel. ``control.protocol`` is the wire format shared by the server inside the
vrouter and by its clients/agents: pure Python (msgpack, numpy), it imports neither ``vrouter`` nor pyzmq."""
