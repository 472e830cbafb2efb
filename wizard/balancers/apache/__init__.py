"""Apache httpd as the balancer: ``facts`` (what the server loads, its layout, version and modules)
and ``step`` (the vhost: plan, apply with a config test before every reload, checks, undo)."""
