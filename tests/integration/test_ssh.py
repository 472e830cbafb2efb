"""The SSH transport against real OpenSSH servers on 127.0.0.1."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from wizard.answers_model import Access
from wizard.errors import HostError, HostKeyError
from wizard.transport.pool import default_host_factory
from wizard.transport.ssh import SSHHost, trust_host_key

# No agent, no ~/.ssh of the machine, no ssh config unless a test writes one (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("isolated_ssh_client")]


@pytest.fixture
def host(ssh_testbed, sshd):
    connection = SSHHost("node1", ssh_testbed.access(sshd))
    yield connection
    connection.close()


@pytest.fixture
def shared_dir():
    """A folder every test user can reach (pytest's tmp_path is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="clbw-ssh-files-"))
    directory.chmod(0o755)
    yield directory
    for root, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            os.remove(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(directory)


def _temp_leftovers(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".clbw-tmp")]


# --------------------------------------------------------------------------- commands


def test_run_returns_status_stdout_stderr_and_takes_stdin(host, ssh_testbed, sshd):
    result = host.run("echo out; echo err >&2; exit 3")
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert host.run("cat", stdin=b"fed through stdin").stdout == "fed through stdin"
    assert host.run("whoami").stdout.strip() == ssh_testbed.login_user
    assert host.where == f"{ssh_testbed.login_user}@127.0.0.1:{sshd.port}"
    assert host.label == "node1"


def test_run_times_out_with_a_host_error(host):
    started = time.monotonic()
    with pytest.raises(HostError, match="did not finish within 1 s"):
        host.run("sleep 10", timeout=1.0)
    assert time.monotonic() - started < 5
    assert host.run("echo still usable").stdout == "still usable\n"


def test_connection_is_reused(host):
    assert host.run("true").ok
    transport = host._client.get_transport()
    assert host.run("echo again").stdout == "again\n"
    assert host.read_bytes("/etc/hostname") is not None
    assert host._client.get_transport() is transport
    assert host.connect_count == 1


def test_parallel_use_of_one_host(host, tmp_path):
    (tmp_path / "f").write_text("x")
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            assert host.run(f"echo {index}").stdout == f"{index}\n"
            assert host.read_bytes(str(tmp_path / "f")) == b"x"
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert host.connect_count == 1


# --------------------------------------------------------------------------- files


def test_file_operations(host, tmp_path):
    path = tmp_path / "server.xml"
    path.write_bytes(b"<Server/>\n")
    path.chmod(0o640)
    assert host.exists(str(path)) and not host.is_dir(str(path))
    assert host.is_dir(str(tmp_path))
    assert not host.exists(str(tmp_path / "missing"))
    assert not host.is_dir(str(tmp_path / "missing"))
    os.symlink(tmp_path / "dangling-target", tmp_path / "dangling")
    assert host.exists(str(tmp_path / "dangling"))  # lstat, like os.path.lexists
    assert host.read_bytes(str(path)) == b"<Server/>\n"
    info = host.stat(str(path))
    assert (info.mode, info.size, info.uid, info.gid) == (0o640, 10, os.getuid(), os.getgid())

    backup = host.backup(str(path))
    assert Path(backup).read_bytes() == b"<Server/>\n"
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640

    host.write_atomic(str(tmp_path / "new.conf"), b"fresh\n")
    assert (tmp_path / "new.conf").read_bytes() == b"fresh\n"
    assert stat.S_IMODE(os.stat(tmp_path / "new.conf").st_mode) == 0o644

    host.remove(str(tmp_path / "new.conf"))
    assert not (tmp_path / "new.conf").exists()
    host.remove(str(tmp_path / "new.conf"))  # already gone: fine

    with pytest.raises(HostError, match="no such file") as caught:
        host.read_bytes(str(tmp_path / "missing"))
    assert str(tmp_path / "missing") in caught.value.message
    with pytest.raises(HostError, match="Could not copy"):
        host.copy(str(tmp_path / "missing"), str(tmp_path / "x"))


def test_write_atomic_keeps_mode_and_owner_and_leaves_no_temp(host, ssh_testbed, shared_dir):
    user = ssh_testbed.plain_user()
    path = shared_dir / "confluence.cfg.xml"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    os.chown(path, user.pw_uid, user.pw_gid)

    host.write_atomic(str(path), b"new content\n")

    info = os.stat(path)
    assert path.read_bytes() == b"new content\n"
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == (user.pw_uid, user.pw_gid)
    assert _temp_leftovers(shared_dir) == []

    host.write_atomic(str(path), b"explicit\n", mode=0o600, owner=(0, 0))
    info = os.stat(path)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, 0, 0)


@pytest.mark.parametrize("how", ["sftp", "sudo"])
def test_write_atomic_writes_a_links_target_and_keeps_the_link(ssh_testbed, sshd, shared_dir, how):
    # Debian's sites-enabled/x.conf is a link to sites-available/x.conf: it must stay one.
    available = shared_dir / "sites-available"
    enabled = shared_dir / "sites-enabled"
    available.mkdir()
    enabled.mkdir()
    target = available / "wiki.conf"
    target.write_bytes(b"old\n")
    link = enabled / "wiki.conf"
    link.symlink_to("../sites-available/wiki.conf")
    (enabled / "dangling.conf").symlink_to("../sites-available/gone.conf")
    user = ssh_testbed.sudo_user() if how == "sudo" else None
    remote = (SSHHost("balancer", ssh_testbed.access(sshd, user=user.pw_name, sudo=True)) if user
              else SSHHost("balancer", ssh_testbed.access(sshd)))
    try:
        assert remote.link_target(str(target)) is None
        assert remote.link_target(str(link)) == str(target)
        remote.write_atomic(str(link), b"new\n")
        assert link.is_symlink() and os.readlink(link) == "../sites-available/wiki.conf"
        assert target.read_bytes() == b"new\n"
        with pytest.raises(HostError, match="leads nowhere"):
            remote.write_atomic(str(enabled / "dangling.conf"), b"x\n")
        assert (enabled / "dangling.conf").is_symlink() and not (available / "gone.conf").exists()
    finally:
        remote.close()
    assert _temp_leftovers(available) == [] and _temp_leftovers(enabled) == []


def test_write_atomic_as_a_plain_user_keeps_their_file(ssh_testbed, sshd, shared_dir):
    user = ssh_testbed.plain_user()
    os.chown(shared_dir, user.pw_uid, user.pw_gid)
    path = shared_dir / "setenv.sh"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    os.chown(path, user.pw_uid, user.pw_gid)
    plain = SSHHost("node1", ssh_testbed.access(sshd, user=user.pw_name))
    try:
        plain.write_atomic(str(path), b"new\n")
    finally:
        plain.close()
    info = os.stat(path)
    assert path.read_bytes() == b"new\n"
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, user.pw_uid, user.pw_gid)
    assert _temp_leftovers(shared_dir) == []


def test_readers_never_see_a_partial_file(host, tmp_path):
    path = tmp_path / "big.conf"
    versions = [bytes([65 + i]) * (1024 * 1024) for i in range(3)]
    path.write_bytes(versions[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with open(path, "rb") as handle:
                seen.add(handle.read())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(6):
            host.write_atomic(str(path), versions[(round_ + 1) % 3])
    finally:
        stop.set()
        thread.join()
    assert seen <= set(versions), "a reader saw a half-written file"
    assert len(seen) >= 2
    assert _temp_leftovers(tmp_path) == []


def test_write_atomic_permission_denied_names_path_and_suggests_sudo(ssh_testbed, sshd, shared_dir):
    user = ssh_testbed.plain_user()
    path = shared_dir / "root-owned.conf"  # the folder and file belong to root
    path.write_bytes(b"root's\n")
    path.chmod(0o644)
    plain = SSHHost("node1", ssh_testbed.access(sshd, user=user.pw_name))
    try:
        assert plain.read_bytes(str(path)) == b"root's\n"
        with pytest.raises(HostError) as caught:
            plain.write_atomic(str(path), b"mine\n")
        assert str(path) in caught.value.message
        assert "permission denied" in caught.value.message
        assert "sudo: true" in caught.value.hint
        assert path.read_bytes() == b"root's\n"
        assert _temp_leftovers(shared_dir) == []
        with pytest.raises(HostError, match="permission denied") as caught:
            plain.remove(str(path))
        assert "sudo" in caught.value.hint
    finally:
        plain.close()


def test_sudo_without_passwordless_sudo_is_explained(ssh_testbed, sshd, ssh_helpers):
    user = ssh_testbed.plain_user()
    ssh_helpers.ensure_sudo()
    plain = SSHHost("node1", ssh_testbed.access(sshd, user=user.pw_name, sudo=True))
    try:
        with pytest.raises(HostError) as caught:
            plain.run("true")
        assert "passwordless sudo" in caught.value.message
        assert f"{user.pw_name} ALL=(root) NOPASSWD:" in caught.value.hint
        assert plain.run("id -un", sudo=False).stdout.strip() == user.pw_name
    finally:
        plain.close()


def test_sudo_user_replaces_root_files(ssh_testbed, sshd, shared_dir):
    user = ssh_testbed.sudo_user()
    secret = shared_dir / "secret.conf"
    secret.write_bytes(b"root only\n")
    secret.chmod(0o600)
    config = shared_dir / "confluence-lb.conf"
    config.write_bytes(b"old\n")
    config.chmod(0o640)
    os.chown(config, 0, 33)
    before_tmp = set(os.listdir("/tmp"))
    host = SSHHost("balancer", ssh_testbed.access(sshd, user=user.pw_name, sudo=True))
    try:
        assert host.run("id -u").stdout.strip() == "0"
        assert host.run("id -u", sudo=False).stdout.strip() == str(user.pw_uid)
        assert host.read_bytes(str(secret)) == b"root only\n"
        assert host.stat(str(secret)).mode == 0o600
        assert host.exists(str(secret))

        host.write_atomic(str(config), b"new\n")
        info = os.stat(config)
        assert config.read_bytes() == b"new\n"
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 33)

        backup = host.backup(str(config))
        assert os.stat(backup).st_uid == 0 and Path(backup).read_bytes() == b"new\n"
        host.remove(backup)
        assert not os.path.exists(backup)

        with pytest.raises(HostError, match="no such file or directory"):
            host.write_atomic(str(shared_dir / "no-such-dir" / "x.conf"), b"x\n")
    finally:
        host.close()
    assert _temp_leftovers(shared_dir) == []
    assert not [name for name in set(os.listdir("/tmp")) - before_tmp if "clbw-upload" in name]


# --------------------------------------------------------------------------- host keys


def test_unknown_host_key_is_refused_before_anything_runs(ssh_testbed, sshd, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    marker = tmp_path / "ran"
    host = SSHHost("node1", ssh_testbed.access(sshd, known_hosts=known_hosts))
    with pytest.raises(HostKeyError) as caught:
        host.run(f"touch {marker}")
    error = caught.value
    assert not marker.exists()
    assert not error.changed
    assert (error.host, error.port, error.key_type) == ("127.0.0.1", sshd.port, "ssh-ed25519")
    assert error.fingerprint == sshd.fingerprint("ed25519")
    assert error.fingerprint in error.message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known_hosts}" in error.hint
    assert "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" in error.hint

    trust_host_key(error, str(known_hosts))
    trust_host_key(error, str(known_hosts))  # no duplicate line
    lines = known_hosts.read_text().splitlines()
    assert lines == [f"[127.0.0.1]:{sshd.port} ssh-ed25519 {error.key_base64}"]
    assert host.run(f"touch {marker}").ok
    assert marker.exists()
    host.close()


def test_unknown_host_key_prompts_decide(ssh_testbed, sshd, tmp_path, scripted_prompts):
    known_hosts = tmp_path / "kh"
    asked: list[HostKeyError] = []
    refusing = SSHHost("node1", ssh_testbed.access(sshd, known_hosts=known_hosts),
                       prompts=scripted_prompts(trust=False, asked=asked))
    with pytest.raises(HostKeyError):
        refusing.run("true")
    assert not known_hosts.exists()

    # The prompts a face hands to the host pool reach the SSH host it builds.
    accepting = default_host_factory("node1", ssh_testbed.access(sshd, known_hosts=known_hosts), "",
                                     scripted_prompts(trust=True, asked=asked))
    try:
        assert accepting.run("echo hi").stdout == "hi\n"
    finally:
        accepting.close()
    assert len(asked) == 2 and asked[1].fingerprint == sshd.fingerprint()
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known_hosts.read_text()


def test_changed_host_key_is_always_refused(ssh_testbed, sshd, tmp_path, scripted_prompts):
    other = ssh_testbed.make_key(tmp_path / "impostor")
    blob = Path(f"{other}.pub").read_text().split()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {blob}\n")
    marker = tmp_path / "ran"
    host = SSHHost("node1", ssh_testbed.access(sshd, known_hosts=known_hosts),
                   prompts=scripted_prompts(trust=True))
    with pytest.raises(HostKeyError) as caught:
        host.run(f"touch {marker}")
    error = caught.value
    assert error.changed and not marker.exists()
    assert error.fingerprint == sshd.fingerprint()
    assert "man-in-the-middle" in error.message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in error.hint
    with pytest.raises(HostError):
        trust_host_key(error, str(known_hosts))
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} ssh-ed25519 {blob}\n"


# --------------------------------------------------------------------------- failures


def test_wrong_key_is_an_authentication_error(ssh_testbed, sshd, tmp_path):
    wrong = ssh_testbed.make_key(tmp_path / "not_authorized")
    host = SSHHost("node1", ssh_testbed.access(sshd, key_file=str(wrong)))
    with pytest.raises(HostError) as caught:
        host.run("true")
    error = caught.value
    assert not isinstance(error, HostKeyError)
    assert f"refused the login as `{ssh_testbed.login_user}`" in error.message
    assert str(wrong) in error.message
    assert "ssh-copy-id" in error.hint and "key_file" in error.hint


def test_connection_refused(ssh_testbed, sshd, ssh_helpers):
    port = ssh_helpers.free_port()
    host = SSHHost("node1", ssh_testbed.access(sshd, port=port))
    with pytest.raises(HostError) as caught:
        host.run("true")
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "connection refused" in caught.value.message
    assert "firewall" in caught.value.hint


def test_sshd_killed_mid_operation_is_a_host_error(ssh_testbed, sshd_factory):
    server = sshd_factory()
    host = SSHHost("node1", ssh_testbed.access(server))
    try:
        assert host.run("true").ok
        killer = threading.Timer(0.5, server.kill_hard)
        killer.start()
        started = time.monotonic()
        with pytest.raises(HostError) as caught:
            host.run("sleep 20", timeout=30)
        killer.join()
        assert "connection to node1" in caught.value.message and "lost" in caught.value.message
        assert time.monotonic() - started < 10
        with pytest.raises(HostError, match="connection refused"):
            host.read_bytes("/etc/hostname")  # reconnects, finds nobody listening
    finally:
        host.close()


def test_encrypted_key_needs_agent_or_passphrase(ssh_testbed, sshd, tmp_path, scripted_prompts):
    locked = ssh_testbed.make_key(tmp_path / "locked", passphrase="s3cret words")
    ssh_testbed.authorize(ssh_testbed.login_user, locked)
    headless = SSHHost("node1", ssh_testbed.access(sshd, key_file=str(locked)))
    with pytest.raises(HostError, match="is encrypted; load it into ssh-agent") as caught:
        headless.run("true")
    assert f"ssh-add {locked}" in caught.value.message

    prompts: list[str] = []
    interactive = SSHHost("node1", ssh_testbed.access(sshd, key_file=str(locked)),
                          prompts=scripted_prompts(("wrong", "s3cret words"), asked=prompts))
    try:
        assert interactive.run("echo unlocked").stdout == "unlocked\n"
        assert len(prompts) == 2 and str(locked) in prompts[0]
        interactive.close()
        assert interactive.run("true").ok  # reconnects without asking again
        assert len(prompts) == 2
    finally:
        interactive.close()


# --------------------------------------------------------------------------- ssh config


def test_ssh_config_alias(ssh_testbed, sshd, tmp_path, monkeypatch):
    known_hosts = ssh_testbed.known_hosts(sshd)
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host confluence-node\n"
        "    HostName 127.0.0.1\n"
        f"    Port {sshd.port}\n"
        f"    User {ssh_testbed.login_user}\n"
        f"    IdentityFile {ssh_testbed.client_key}\n"
        f"    UserKnownHostsFile {known_hosts}\n")
    monkeypatch.setenv("CLBW_SSH_CONFIG", str(config))
    host = SSHHost("node1", Access(transport="ssh", host="confluence-node"))
    try:
        assert host.where == f"{ssh_testbed.login_user}@127.0.0.1:{sshd.port}"
        assert host.run("echo via alias").stdout == "via alias\n"
    finally:
        host.close()
    # Explicit access fields win over the config.
    overridden = SSHHost("node1", Access(transport="ssh", host="confluence-node", port=1,
                                         user="someone"))
    assert overridden.where == "someone@127.0.0.1:1"


def test_proxy_jump_through_a_bastion(ssh_testbed, sshd, sshd_factory):
    bastion = sshd_factory()
    both = ssh_testbed.known_hosts(sshd, bastion)
    jump = f"{ssh_testbed.login_user}@127.0.0.1:{bastion.port}"
    host = SSHHost("node1", ssh_testbed.access(sshd, known_hosts=both, proxy_jump=jump))
    try:
        assert host.run("echo through the bastion").stdout == "through the bastion\n"
        import paramiko

        assert isinstance(host._client.get_transport().sock, paramiko.Channel)
        assert len(host._hop_clients) == 1
        assert f"Accepted publickey for {ssh_testbed.login_user}" in bastion.log()
        assert host.read_bytes("/etc/hostname")
    finally:
        host.close()

    # The hop's own key is verified too.
    target_only = ssh_testbed.known_hosts(sshd)
    unverified = SSHHost("node1", ssh_testbed.access(sshd, known_hosts=target_only,
                                                     proxy_jump=jump))
    with pytest.raises(HostKeyError) as caught:
        unverified.run("true")
    assert caught.value.port == bastion.port
