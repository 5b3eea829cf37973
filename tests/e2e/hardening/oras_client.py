"""An ORAS client (oras-py) against oci-storage, for hardening::anonymous: pushes an artifact
with credentials and pulls it back without any. (A push without credentials is checked by the
test itself: oras-py fails on its own then, before it shows the registry's answer.)
Usage: oras_client.py HOST USER PASSWORD WORKDIR. Prints one JSON object with what happened."""
import json
import os
import sys

import oras.client

host, user, password, workdir = sys.argv[1:5]
os.chdir(workdir)
with open("note.txt", "w") as f:
    f.write("pushed with oras\n")


def client():
    # oras-py's default auth backend expects a token realm; Basic registries use "basic".
    return oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")


# oras-py keeps logins in a Docker config file (~/.docker/config.json by default): each client
# gets its own here, so that the stranger has no credentials and nothing outside WORKDIR changes.
configs = {}
for who in ("pusher", "stranger"):
    os.makedirs(who, exist_ok=True)
    configs[who] = os.path.abspath(f"{who}/config.json")
    with open(configs[who], "w") as f:
        json.dump({"auths": {}}, f)

result = {}
pusher = client()
pusher.login(username=user, password=password, hostname=host, config_path=configs["pusher"])
pushed = pusher.push(files=["note.txt"], target=f"{host}/apps/notes:v1", config_path=configs["pusher"])
result["push_status"] = pushed.status_code

stranger = client()
pulled = stranger.pull(target=f"{host}/apps/notes:v1", outdir="pulled", config_path=configs["stranger"])
result["pulled"] = open(pulled[0]).read() if pulled else None

print(json.dumps(result))
