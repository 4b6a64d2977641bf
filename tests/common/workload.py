# Gives a lab host a tiny image and named running containers, with no
# registry and no docker CLI (Debian 13 and 14 install none): dockerd's API
# on its unix socket, from the host's own python3. The image holds dash,
# sleep and the C library, taken from the host itself.
#   python3 - NAME[=POLICY][+sock]...   (as root; prints "NAME ID" per
#   container; the restart policy is `always` unless given, `no` for none;
#   `+sock` mounts the daemon's socket into it, as guides warn never to)
import http.client
import io
import json
import socket
import sys
import tarfile


class Docker(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=60)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect("/var/run/docker.sock")


def call(method, path, body=None, headers=None):
    connection = Docker()
    connection.request(method, path, body, headers or {})
    answer = connection.getresponse()
    data = answer.read()
    if answer.status >= 300:
        sys.exit(f"{method} {path}: {answer.status} {data[:300]!r}")
    return data


def image():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        for path in ["bin/dash", "bin/sleep", "lib/x86_64-linux-gnu/libc.so.6",
                     "lib64/ld-linux-x86-64.so.2"]:
            tar.add("/" + path, arcname=path)
    call("POST", "/images/create?fromSrc=-&repo=mini&tag=latest", buffer.getvalue(),
         {"Content-Type": "application/x-tar"})


def run(name, policy, sock):
    spec = {
        "Image": "mini:latest",
        "Cmd": ["/bin/dash", "-c", "while :; do /bin/sleep 1; done"],
        "HostConfig": {"RestartPolicy": {"Name": policy}},
    }
    if sock:
        spec["HostConfig"]["Binds"] = ["/var/run/docker.sock:/var/run/docker.sock"]
    created = json.loads(call("POST", f"/containers/create?name={name}",
                              json.dumps(spec), {"Content-Type": "application/json"}))
    call("POST", f"/containers/{name}/start")
    return created["Id"]


image()
for arg in sys.argv[1:]:
    sock = arg.endswith("+sock")
    name, _, policy = arg.removesuffix("+sock").partition("=")
    print(name, run(name, policy or "always", sock))
