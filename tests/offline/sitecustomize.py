"""
The tests run offline: a connection to anywhere but this machine fails, loudly.

Python imports a module named sitecustomize when it starts, from the first folder of the path
that holds one, so tests/conftest.py puts this folder first on PYTHONPATH: every script the
tests start (train.py, sample.py, torchrun's workers, the prepare scripts' worker processes)
has the guard before it runs a line. conftest also calls install() in the test process.

Loopback and Unix sockets stay open (torchrun's rendezvous, gloo and wandb's local service
use them), and so do this machine's own addresses. Anything else raises OSError, as an
unplugged machine would, so the code under test takes its offline path; and every refused
attempt is appended to the file named by $GPTLAB_TESTS_NETWORK_LOG, which conftest reads
after each test, so an attempt that the code catches and handles still fails the test.
"""

import errno
import ipaddress
import os
import socket

_real = {}


def _is_local_name(host):
    if host is None or host in ("localhost", "", "<broadcast>"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback or host in _own_addresses()
    except ValueError:  # a name, not an address
        return host.lower().endswith(".localhost") or host.lower() in _own_names()


def _own_names():
    """This machine's own names (torchrun may give its workers the fully qualified one)."""
    if "names" not in _real:
        _real["names"] = {socket.gethostname().lower(), _real["getfqdn"]().lower()}
    return _real["names"]


def _own_addresses():
    """The addresses this machine's name resolves to (from /etc/hosts, usually)."""
    if "own" not in _real:
        try:
            _real["own"] = {a[4][0] for a in _real["getaddrinfo"](socket.gethostname(), None)}
        except OSError:
            _real["own"] = set()
    return _real["own"]


def _refuse(what):
    log = os.environ.get("GPTLAB_TESTS_NETWORK_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{what} (pid {os.getpid()})\n")
    raise OSError(errno.ENETUNREACH, f"tests run offline: refused {what}")


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    if not _is_local_name(host):
        _refuse(f"a lookup of {host}:{port}")
    return _real["getaddrinfo"](host, port, *args, **kwargs)


def _check_address(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local_name(address[0]):
        _refuse(f"a connection to {address[0]}:{address[1]}")


def _guarded_connect(self, address):
    _check_address(self, address)
    return _real["connect"](self, address)


def _guarded_connect_ex(self, address):
    _check_address(self, address)
    return _real["connect_ex"](self, address)


def install():
    """Guard socket.getaddrinfo, socket.socket.connect and connect_ex (create_connection and
    every HTTP client go through them). Installing twice changes nothing."""
    if _real:
        return
    _real.update(getaddrinfo=socket.getaddrinfo, getfqdn=socket.getfqdn,
                 connect=socket.socket.connect, connect_ex=socket.socket.connect_ex)
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex


install()
