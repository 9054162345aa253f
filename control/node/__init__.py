"""The node side: one node's desired state (``state``), the code that pushes it to the node's vrouter
and audits it (``push``), the cluster<->node channel (``channel``) and the node agent (``agent``)."""
