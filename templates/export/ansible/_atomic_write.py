# The writes both file-editing modules share, spliced into each at export time (an Ansible module
# ships as one file). Its names (os, tempfile, AnsibleModule) are the modules' own imports.
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


def _owe_restart(module: AnsibleModule, marker: str, edited: str) -> None:
    """Leave ``marker`` on the node before ``edited`` changes: the edit takes effect only at Confluence's
    next restart, and a play killed between the edit and that restart would otherwise forget it is owed
    (the next run finds the file as wanted and changes nothing). The play removes the marker once the
    node answers RUNNING after its restart."""
    directory = os.path.dirname(marker) or "."
    text = (f"confluence-lb-wizard: {edited} was edited; the change takes effect when Confluence on this node "
            "restarts. The exported playbook restarts the node while this file is here and removes it once the "
            "node answers RUNNING again.\n")
    handle, temporary = tempfile.mkstemp(prefix=".clbw-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, marker)
    except OSError as exc:
        module.fail_json(msg=f"cannot write {marker} (it records that a restart is owed, before {edited} "
                             f"changes; nothing was changed): {exc.strerror or exc}")
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
