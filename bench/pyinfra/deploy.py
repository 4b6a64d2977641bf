"""The job of playbooks/docker-tls.yaml, written as a pyinfra user would:
the certificates from dockhand's PKI store (host data `pki_dir`), the same
unit drop-in, daemon.json and sshd drop-in (bench/job), sshd's own check of
its configuration, and the same reloads. Like most pyinfra deploys it
verifies nothing afterwards. Run by bench/compare.py with --parallel =
hosts."""

from pathlib import Path

from pyinfra import host
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

JOB = Path(__file__).resolve().parent.parent / "job"
TLS = "/etc/docker/tls"
PKI = host.data.pki_dir
ROOT = {"user": "root", "group": "root"}

files.directory(name="TLS directory", path=TLS, mode="755", **ROOT)
ca = files.put(name="CA", src=f"{PKI}/ca.pem", dest=f"{TLS}/ca.pem", mode="444", **ROOT)
cert = files.put(
    name="Server certificate",
    src=f"{PKI}/servers/{host.name}/cert.pem",
    dest=f"{TLS}/server-cert.pem",
    mode="444",
    **ROOT,
)
key = files.put(
    name="Server key",
    src=f"{PKI}/servers/{host.name}/key.pem",
    dest=f"{TLS}/server-key.pem",
    mode="400",
    **ROOT,
)
files.directory(
    name="Unit drop-in directory", path="/etc/systemd/system/docker.service.d", mode="755", **ROOT
)
unit = files.put(
    name="Unit drop-in without -H",
    src=str(JOB / "override.conf"),
    dest="/etc/systemd/system/docker.service.d/override.conf",
    mode="644",
    **ROOT,
)
daemon = files.put(
    name="daemon.json", src=str(JOB / "daemon.json"), dest="/etc/docker/daemon.json", mode="644", **ROOT
)
sshd = files.put(
    name="sshd drop-in",
    src=str(JOB / "00-dockhand.conf"),
    dest="/etc/ssh/sshd_config.d/00-dockhand.conf",
    mode="644",
    **ROOT,
)
systemd.daemon_reload(name="Reload systemd", _if=unit.did_change)
systemd.service(
    name="Restart docker",
    service="docker",
    restarted=True,
    _if=any_changed(ca, cert, key, unit, daemon),
)
server.shell(name="Check sshd's configuration", commands=["sshd -t"], _if=sshd.did_change)
systemd.service(name="Reload ssh", service="ssh", reloaded=True, _if=sshd.did_change)
