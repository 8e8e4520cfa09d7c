"""Run a command inside a new network namespace whose only interface is loopback.

Tests use `netns_command(...)` as an argv prefix. The namespace comes from `unshare --net`
(as root) or `unshare --map-root-user --net` (otherwise), each with a new mount namespace.
Inside it this file runs as a script. It mounts a fresh sysfs, so that /sys/class/net lists this
namespace's interfaces, and brings `lo` up, because Jupyter kernels talk to the build over TCP on
127.0.0.1. Before it starts the command it checks that the namespace is isolated:

- /sys/class/net must list `lo` and nothing else;
- a TCP connection to a port that the test listens on, on 127.0.0.1 of the outer namespace,
  must fail.

If either check fails, the command is not started and the exit status is 3. The script prints
one `netns:` line per check, which the tests assert on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# <linux/sockios.h> and <net/if.h>: read and write an interface's flags through struct ifreq,
# whose size is 40 bytes on 64-bit Linux (16-byte name, then a 24-byte union).
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"
ISOLATION_FAILED = 3


@functools.cache
def unshare_prefix() -> tuple[list[str] | None, str]:
    """Return (argv prefix that creates a network and mount namespace, why none works).

    The prefix is None when neither form works here; the reason then names each failure.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "util-linux `unshare` is not installed"
    candidates = []
    if os.geteuid() == 0:
        candidates.append([unshare, "--net", "--mount"])
    candidates.append([unshare, "--map-root-user", "--net", "--mount"])
    failures = []
    for prefix in candidates:
        probe = subprocess.run(
            [*prefix, "true"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return prefix, ""
        failures.append(f"`{' '.join(prefix[1:])}` failed: {probe.stderr.strip()}")
    return None, "; ".join(failures)


def netns_command(outer_port: int) -> list[str]:
    """Return the argv prefix that runs a command in an isolated network namespace.

    outer_port is a port listening on 127.0.0.1 of the calling namespace (see
    `outer_listener`); the script checks that it cannot reach it. Skips the test when no
    network namespace can be created here.
    """
    import pytest

    prefix, reason = unshare_prefix()
    if prefix is None:
        pytest.skip(f"cannot create a network namespace: {reason}")
    outer = f"{_namespace('net')},{_namespace('mnt')}"
    return [*prefix, sys.executable, str(Path(__file__).resolve()), str(outer_port), outer, "--"]


@contextlib.contextmanager
def outer_listener() -> Iterator[int]:
    """Listen on a free port of 127.0.0.1 in this namespace and yield the port.

    Before yielding it checks that a connection from this namespace succeeds, so that a failed
    connection from inside the new namespace shows isolation, not a closed port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = server.accept()
            accepted.close()
        yield port


def _namespace(kind: str) -> str:
    """Return this process's namespace of the given kind, e.g. 'net:[4026531840]'."""
    return os.readlink(f"/proc/self/ns/{kind}")


def _mount_fresh_sysfs() -> str:
    """Mount a sysfs that belongs to this network namespace over /sys; return how it went."""
    mounted = subprocess.run(
        ["mount", "-t", "sysfs", "sysfs", "/sys"], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        return f"mount failed: {mounted.stderr.strip()}"
    return "mounted"


def _bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(control, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(control, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def _connect_error(port: int) -> str:
    """Return the error of a TCP connection to 127.0.0.1:port, or "" when it succeeds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return ""
    except OSError as error:
        return f"{type(error).__name__} ({errno.errorcode.get(error.errno, error.errno)})"


def main(argv: list[str]) -> int:
    """Check the namespace's isolation, then replace this process with the command."""
    outer_port, outer_namespaces, separator, *command = argv
    assert separator == "--", "usage: isolation.py PORT NET,MNT -- COMMAND..."
    assert command, "usage: isolation.py PORT NET,MNT -- COMMAND..."
    outer_net, outer_mnt = outer_namespaces.split(",")

    # Touch nothing unless unshare gave this process its own network and mount namespaces:
    # the sysfs mount below must never land on the caller's /sys.
    kernel_view = sorted(name for _, name in socket.if_nameindex())
    if _namespace("net") == outer_net or kernel_view != ["lo"]:
        print(
            f"netns: not a new network namespace (interfaces: {' '.join(kernel_view)}); "
            "the command was not started",
            flush=True,
        )
        return ISOLATION_FAILED
    if _namespace("mnt") == outer_mnt:
        print("netns: not a new mount namespace; the command was not started", flush=True)
        return ISOLATION_FAILED

    sysfs = _mount_fresh_sysfs()
    _bring_loopback_up()
    interfaces = sorted(os.listdir("/sys/class/net"))
    print(f"netns: sysfs {sysfs}; /sys/class/net: {' '.join(interfaces)}", flush=True)
    print(f"netns: interfaces seen by the kernel: {' '.join(kernel_view)}", flush=True)
    error = _connect_error(int(outer_port))
    print(f"netns: connect to outer 127.0.0.1:{outer_port}: {error or 'connected'}", flush=True)

    # Without a fresh sysfs, /sys/class/net shows the outer namespace; the kernel's list decides.
    if (interfaces != ["lo"] and sysfs == "mounted") or error == "":
        print("netns: the namespace is not isolated; the command was not started", flush=True)
        return ISOLATION_FAILED
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
