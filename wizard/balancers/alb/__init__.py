"""The AWS Application Load Balancer work of the ``balancer`` step (kind: alb).

One idea per module: ``names`` (what things are called and how they are
tagged), ``facts`` (what AWS holds, as plain data), ``read`` (reading it, and
refusing what cannot work), ``desired`` (what the seeds and the Quick Start ask
for), ``diff`` and ``plan`` (pure comparisons), ``apply`` (making the changes,
undo first), ``undo`` (taking them back), ``health`` (waiting for the balancer
and its targets, and why a target is unhealthy), ``checks`` (verify),
``drain`` (a node taken out and put back for a rolling restart) and
``timing`` (how long to wait). Only ``read``, ``apply``, ``undo``, ``health`` and ``drain``
talk to AWS, through ``wizard.transport.aws``; nothing here imports boto3 at load time.
"""
