"""What Confluence is, independent of any balancer: server.xml and its Connector, a node's facts,
and the probes (``/status``, Synchrony's heartbeat, the applinks manifest, the WebSocket)."""
