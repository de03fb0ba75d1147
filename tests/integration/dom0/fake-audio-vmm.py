#!/usr/bin/python3
# A stand-in for atoll-vmm with a sound device, for atolld's tests: it speaks
# the control protocol (hypervisor/docs/control-protocol.md) without a guest,
# so that a test can make it report any audio counters, well-formed or not.
# Takes atoll-vmm's arguments as atolld passes them (--config, --control-socket,
# --serial, --exit-file). Besides the protocol's own commands it knows one for
# the test: {"command": "test-send", "arguments": {"line": TEXT}} sends TEXT as
# one line to every other connection (atolld's), as an event would be.
import argparse
import json
import os
import selectors
import socket
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--control-socket", required=True)
parser.add_argument("--serial", default="")
parser.add_argument("--exit-file", default="")
args = parser.parse_args()

with open(args.config) as config_file:
    config = json.load(config_file)
started_ns = time.time_ns()
audio = {"backend": "pulse", "connected": True, "underruns": 0, "overruns": 0, "dropped_frames": 0,
         "capture_gaps": 0, "playback": {"volume_percent": 100, "muted": False},
         "capture": {"volume_percent": 100, "muted": False}}

try:
    os.unlink(args.control_socket)
except FileNotFoundError:
    pass
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(args.control_socket)
listener.listen(8)
selector = selectors.DefaultSelector()
selector.register(listener, selectors.EVENT_READ)
buffers = {}


def send(connection, message):
    text = message if isinstance(message, str) else json.dumps(message)
    connection.sendall(text.encode() + b"\n")


def broadcast(message, but=None):
    for connection in list(buffers):
        if connection is not but:
            try:
                send(connection, message)
            except OSError:
                pass  # a client that left; its end of file comes next


def finish(code, reason):
    broadcast({"event": "exit", "code": code, "reason": reason, "message": ""})
    if args.exit_file:
        with open(args.exit_file, "w") as exit_file:
            exit_file.write(json.dumps({"code": code, "reason": reason, "message": ""}) + "\n")
    os.unlink(args.control_socket)
    sys.exit(code)


def handle(connection, request):
    command = request.get("command")
    arguments = request.get("arguments", {})
    reply = {"id": request.get("id"), "ok": True, "result": {}}
    if command == "status":
        reply["result"] = {"state": "running", "name": config.get("name", ""), "pid": os.getpid(),
                           "vcpus": 1, "memory_mib": 32, "boot_count": 1, "started_unix_ns": started_ns,
                           "first_vcpu_entry_unix_ns": started_ns, "audio": audio}
    elif command in ("audio-volume", "audio-mute"):
        key, value = ("volume_percent", arguments.get("percent")) if command == "audio-volume" \
            else ("muted", arguments.get("muted"))
        for stream in ("playback", "capture"):
            audio[stream][key] = value
        reply["result"] = {"audio": audio}
        broadcast({"event": "audio", "audio": audio}, but=connection)
    elif command == "test-send":
        broadcast(arguments["line"], but=connection)
    elif command == "stop":
        send(connection, reply)
        finish(0, "stopped")
    else:
        reply = {"id": request.get("id"), "ok": False,
                 "error": {"code": "unknown-command", "message": "the fake atoll-vmm does not know " + str(command)}}
    send(connection, reply)


while True:
    for key, _ in selector.select():
        if key.fileobj is listener:
            connection, _ = listener.accept()
            buffers[connection] = b""
            selector.register(connection, selectors.EVENT_READ)
            send(connection, {"event": "hello", "protocol": 1, "name": config.get("name", ""), "pid": os.getpid(),
                              "state": "running", "audio": audio})
            continue
        connection = key.fileobj
        data = connection.recv(65536)
        if not data:
            selector.unregister(connection)
            del buffers[connection]
            connection.close()
            continue
        buffers[connection] += data
        while b"\n" in buffers[connection]:
            line, buffers[connection] = buffers[connection].split(b"\n", 1)
            handle(connection, json.loads(line))
