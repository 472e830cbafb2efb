"""HAProxy 2.x as the balancer: ``facts`` (what HAProxy loads: its -f files and folders), ``config``
(the file as data), ``runtime`` (drain and ready through the runtime API) and ``step`` (the kind)."""
