"""confluence-lb-wizard: Confluence Data Center behind a load balancer, step by step.

This package is the core. It never imports Textual or questionary (the faces in
``screens/`` and ``screens/plain/`` do), and imports boto3 and paramiko only
inside the functions that need them, so ``--help`` stays fast.
"""

__version__ = "0.1.0"
TOOL_NAME = "confluence-lb-wizard"
