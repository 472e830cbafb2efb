# The atomic write both file-editing modules share, spliced into each at export time (an Ansible
# module ships as one file). Its names (os, tempfile, AnsibleModule) are the modules' own imports.
def _write(module: AnsibleModule, path: str, data: bytes) -> None:
    """Write ``data`` over ``path`` atomically, keeping its owner and mode (atomic_move copies them)."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(prefix=".clbw-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        module.atomic_move(temporary, path, unsafe_writes=False)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
