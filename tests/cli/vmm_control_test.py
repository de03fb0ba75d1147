#!/usr/bin/env python3
"""atoll-vmm's control socket (hypervisor/docs/control-protocol.md) against a real
atoll-vmm running a tiny guest on this machine's /dev/kvm."""
import json, os, socket, subprocess, sys, tempfile, time, unittest

VMM = sys.argv.pop(1)
GUESTS = sys.argv.pop(1)


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


class Client:
    def __init__(self, path):
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.file = self.sock.makefile("rw")
        self.events = []
        self.hello = self.read()
        self.next_id = 1

    def read(self):
        line = self.file.readline()
        if not line:
            return None
        return json.loads(line)

    def send_raw(self, text):
        self.file.write(text)
        self.file.flush()

    def call(self, command, **arguments):
        request_id = self.next_id
        self.next_id += 1
        message = {"id": request_id, "command": command}
        if arguments:
            message["arguments"] = arguments
        self.send_raw(json.dumps(message) + "\n")
        while True:
            reply = self.read()
            if reply is None:
                raise EOFError("connection closed")
            if "event" in reply:
                self.events.append(reply)
                continue
            assert reply["id"] == request_id, reply
            return reply

    def wait_event(self, name, timeout=10):
        deadline = time.time() + timeout
        self.sock.settimeout(timeout)
        while time.time() < deadline:
            for event in self.events:
                if event["event"] == name:
                    self.events.remove(event)
                    return event
            event = self.read()
            if event is None:
                break
            self.events.append(event)
        raise AssertionError(f"no {name} event; saw {self.events}")


@unittest.skipUnless(kvm_usable(), "no usable /dev/kvm on this machine")
class ControlSocketTest(unittest.TestCase):
    def start(self, behaviour="poweroff-on-button", connect=True, serial="none", extra=()):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "vm.ctl")
        self.vmm = subprocess.Popen(
            [VMM, "--name", "tiny", "--kernel", os.path.join(GUESTS, f"tiny-{behaviour}.bzImage"),
             "--memory", "64", "--cpus", "2", "--no-net", "--serial", serial, "--control-socket", self.path,
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return Client(self.path) if connect else None

    def tearDown(self):
        if self.vmm.poll() is None:
            self.vmm.kill()
        self.vmm.communicate()

    def finish(self, timeout=10):
        out, err = self.vmm.communicate(timeout=timeout)
        return self.vmm.returncode, err

    def test_greeting_and_status(self):
        client = self.start()
        self.assertEqual(client.hello["event"], "hello")
        self.assertEqual(client.hello["protocol"], 1)
        self.assertEqual(client.hello["pid"], self.vmm.pid)
        status = client.call("status")
        self.assertTrue(status["ok"])
        result = status["result"]
        self.assertEqual((result["name"], result["vcpus"], result["memory_mib"]), ("tiny", 2, 64))
        self.assertEqual(result["state"], "running")
        self.assertEqual(result["boot_count"], 1)
        self.assertGreaterEqual(result["first_vcpu_entry_unix_ns"], result["started_unix_ns"])
        config = client.call("config")["result"]
        self.assertEqual(config["vcpus"], 2)

    def test_audio_status_volume_and_mute(self):
        # No PulseAudio at that address: the VM runs, the client keeps retrying.
        client = self.start(extra=["--audio", "pulse,server=unix:/nonexistent/atoll-test/native"])
        self.assertEqual(client.hello["audio"]["backend"], "pulse", "the greeting carries the sound's state")
        audio = client.call("status")["result"]["audio"]
        self.assertEqual((audio["backend"], audio["connected"], audio["underruns"]), ("pulse", False, 0))
        self.assertEqual(audio["playback"], {"volume_percent": 100, "muted": False})
        reply = client.call("audio-volume", percent=40, stream="playback")
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"]["audio"]["playback"]["volume_percent"], 40)
        self.assertEqual(reply["result"]["audio"]["capture"]["volume_percent"], 100)
        self.assertTrue(client.call("audio-mute", muted=True)["ok"])
        audio = client.call("status")["result"]["audio"]
        self.assertTrue(audio["playback"]["muted"] and audio["capture"]["muted"])
        for command, arguments in [("audio-volume", {"percent": 151}), ("audio-volume", {"percent": "loud"}),
                                   ("audio-volume", {"percent": -1}), ("audio-volume", {}),
                                   ("audio-volume", {"percent": 50, "stream": "left"}), ("audio-mute", {}),
                                   ("audio-mute", {"muted": 1})]:
            reply = client.call(command, **arguments)
            self.assertEqual(reply["error"]["code"], "bad-request", (command, arguments, reply))
        audio = client.call("status")["result"]["audio"]
        self.assertEqual(audio["playback"], {"volume_percent": 40, "muted": True}, "refused requests changed nothing")
        # Watchers hear of the change without asking.
        event = client.wait_event("audio", timeout=5)
        self.assertEqual(event["audio"]["playback"], {"volume_percent": 40, "muted": True})

    def test_without_audio_there_is_nothing_to_set(self):
        client = self.start()
        self.assertIsNone(client.hello["audio"])
        self.assertIsNone(client.call("status")["result"]["audio"])
        self.assertEqual(client.call("audio-volume", percent=50)["error"]["code"], "invalid-state")

    def test_pause_resume(self):
        client = self.start()
        self.assertTrue(client.call("pause")["ok"])
        self.assertEqual(client.wait_event("state")["state"], "paused")
        self.assertEqual(client.call("status")["result"]["state"], "paused")
        again = client.call("pause")
        self.assertEqual(again["error"]["code"], "invalid-state")
        self.assertEqual(client.call("shutdown")["error"]["code"], "invalid-state")
        self.assertTrue(client.call("resume")["ok"])
        self.assertEqual(client.wait_event("state")["state"], "running")
        self.assertEqual(client.call("resume")["error"]["code"], "invalid-state")

    def test_shutdown_powers_off_through_acpi(self):
        client = self.start()
        self.assertTrue(client.call("shutdown")["ok"])
        event = client.wait_event("exit")
        self.assertEqual((event["code"], event["reason"]), (0, "poweroff"))
        code, _ = self.finish()
        self.assertEqual(code, 0)
        self.assertFalse(os.path.exists(self.path), "the socket is removed at exit")

    def test_guest_that_ignores_the_button_can_be_stopped(self):
        client = self.start("halt")
        self.assertTrue(client.call("shutdown")["ok"])
        time.sleep(0.3)
        self.assertIsNone(self.vmm.poll(), "a halted guest does not power off")
        self.assertTrue(client.call("stop")["ok"])
        self.assertEqual(client.wait_event("exit")["reason"], "stopped")
        self.assertEqual(self.finish()[0], 0)

    def test_reboot_counts_boots(self):
        client = self.start()
        self.assertTrue(client.call("reboot")["ok"])
        self.assertEqual(client.wait_event("reset")["boot_count"], 2)
        self.assertEqual(client.call("status")["result"]["boot_count"], 2)
        client.call("stop")

    def test_serial_console_client_stays_attached_across_reboot(self):
        console_path = os.path.join(tempfile.mkdtemp(), "serial.sock")
        client = self.start(serial=f"socket:{console_path}")
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.connect(console_path)
        console.sendall(b"typed before the reboot\n")
        self.assertTrue(client.call("reboot")["ok"])
        self.assertEqual(client.wait_event("reset")["boot_count"], 2)
        console.sendall(b"typed after the reboot\n")
        console.settimeout(0.5)
        try:
            closed = console.recv(1) == b""
        except socket.timeout:
            closed = False
        self.assertFalse(closed, "the console connection survives the guest's reboot")
        self.assertTrue(os.path.exists(console_path))
        client.call("stop")
        self.assertEqual(self.finish()[0], 0)
        self.assertEqual(console.recv(1), b"", "the console closes when the VMM exits")
        self.assertFalse(os.path.exists(console_path), "the console socket is removed at exit")

    def test_bad_requests_get_named_errors_and_change_nothing(self):
        client = self.start()
        for raw, code in [("not json\n", "bad-request"), ("[1,2]\n", "bad-request"),
                          ('{"id":1}\n', "bad-request"), ('{"id":[1],"command":"status"}\n', "bad-request"),
                          ('{"id":2,"command":"status","arguments":5}\n', "bad-request"),
                          ('{"id":3,"command":"format-disk"}\n', "unknown-command"),
                          ("x" * 70000 + "\n", "bad-request")]:
            client.send_raw(raw)
            reply = client.read()
            self.assertFalse(reply["ok"], raw[:40])
            self.assertEqual(reply["error"]["code"], code, raw[:40])
        self.assertEqual(client.call("status")["result"]["state"], "running")

    def test_clients_come_and_go_without_harm(self):
        first = self.start()
        second = Client(self.path)
        second.sock.close()
        third = Client(self.path)
        self.assertTrue(third.call("pause")["ok"])
        self.assertEqual(first.wait_event("state")["state"], "paused")
        third.call("resume")
        self.assertTrue(first.call("status")["ok"])
        first.call("stop")

    def test_triple_fault_exit_code_and_registers(self):
        exit_file = os.path.join(tempfile.mkdtemp(), "vm.exit")
        self.start("triple-fault", connect=False, extra=("--exit-file", exit_file))
        code, err = self.finish()
        self.assertEqual(code, 3)
        self.assertIn("triple-faulted", err)
        self.assertIn("rip=", err)
        with open(exit_file) as recorded:
            end = json.load(recorded)
        self.assertEqual((end["code"], end["reason"]), (3, "triple-fault"))
        self.assertIn("rip=", end["message"])

    def test_exit_file_records_a_power_off(self):
        exit_file = os.path.join(tempfile.mkdtemp(), "vm.exit")
        client = self.start(extra=("--exit-file", exit_file))
        self.assertFalse(os.path.exists(exit_file), "written only at the end")
        self.assertTrue(client.call("shutdown")["ok"])
        self.assertEqual(self.finish()[0], 0)
        with open(exit_file) as recorded:
            self.assertEqual(json.load(recorded), {"code": 0, "reason": "poweroff", "message": ""})


if __name__ == "__main__":
    unittest.main(verbosity=2)
