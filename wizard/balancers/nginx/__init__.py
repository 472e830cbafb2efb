"""nginx (open source) as the balancer: ``facts`` (what nginx really loads, read from ``nginx -T``),
``config`` (the file as data, sticky sessions built from maps) and ``step`` (the kind)."""
