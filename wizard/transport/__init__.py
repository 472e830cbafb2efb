"""How the wizard reaches machines: this machine's files and commands, SSH (paramiko), AWS (boto3).

paramiko and boto3 load only when a connection is made, so ``--help`` and the first screen stay fast.
"""
