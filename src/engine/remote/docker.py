import json, socket
def get(path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect("/var/run/docker.sock")
    s.sendall(("GET " + path + " HTTP/1.0\r\nHost: docker\r\n\r\n").encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]: raise SystemExit("docker_unknown " + head.split(b"\r\n")[0].decode())
    return json.loads(body)
print("docker_info " + json.dumps(get("/info")))
for c in get("/containers/json?all=1"):
    print("docker_container " + json.dumps(get("/containers/" + c["Id"] + "/json")))
print("docker_volumes %d" % len(get("/volumes").get("Volumes") or []))
