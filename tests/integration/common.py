"""Helpers shared by the integration tests (stdlib only; boto3 is imported lazily).

A `Server` is one `ebridge serve` process on a free loopback port with its own
temporary data dir.  `start()` waits for GET /health; `stop()` sends SIGTERM and
checks the exit code; `kill9()` simulates a crash; `restart()` starts a new
process on the same data dir (and, by default, the same port).

The test scripts print one line per check ("ok - ..." / "FAIL - ...") through a
`Checker`, keep going after a failure, and exit 1 at the end if anything failed.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

# Error tests must not wait on client retries (also read by the AWS CLI).
os.environ["AWS_MAX_ATTEMPTS"] = "1"
os.environ["AWS_RETRY_MODE"] = "standard"
# Keep the clients away from the user's ~/.aws and from instance metadata.
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_PAGER"] = ""
for _v in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
           "AWS_ENDPOINT_URL_EVENTBRIDGE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
    os.environ.pop(_v, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"

DUMMY_KEY = "AKIDEXAMPLE"
DUMMY_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_CLI = "/usr/bin/aws"

_servers = []  # every Server started, so that a crash in a test still stops them


def _on_signal(signum, frame):
    # SIGTERM (e.g. a ctest timeout): unwind so that `finally` blocks and atexit stop the servers
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def write_config(path, credentials=None, **extra):
    """Write a serve --config JSON file; credentials = [(access_key, secret, account), ...]."""
    doc = dict(extra)
    if credentials:
        doc["credentials"] = [{"access_key_id": ak, "secret_access_key": sk, "account": acct}
                              for ak, sk, acct in credentials]
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def _die_with_parent():
    """In the child before exec: restore the signal mask and ask Linux to SIGKILL the server if the
    test process dies without stopping it."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass


class ServerError(Exception):
    pass


class Server:
    def __init__(self, binary, *, sync="normal", account=None, region=None, config=None, credentials=None,
                 extra_args=(), host="127.0.0.1", port=None, data_dir=None, log_level="info"):
        self.binary = os.path.abspath(binary)
        self.tmp = tempfile.mkdtemp(prefix="ebridge-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.host = host
        self.port = port or free_port()
        self.sync = sync
        self.account = account
        self.region = region
        self.config = config
        if credentials:
            self.config = write_config(os.path.join(self.tmp, "config.json"), credentials)
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.proc = None
        self.log_path = None
        self.nstarts = 0
        _servers.append(self)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def argv(self):
        a = [self.binary, "serve", "--listen", "%s:%d" % (self.host, self.port), "--data-dir", self.data_dir,
             "--sync", self.sync, "--log-level", self.log_level]
        if self.account:
            a += ["--account", self.account]
        if self.region:
            a += ["--region", self.region]
        if self.config:
            a += ["--config", self.config]
        return a + self.extra_args

    def start(self, timeout=10.0):
        if self.proc and self.proc.poll() is None:
            raise ServerError("server already running")
        self.nstarts += 1
        self.log_path = os.path.join(self.tmp, "server-%d.log" % self.nstarts)
        log = open(self.log_path, "wb")
        # no signal may interrupt us between the fork and the assignment (the child would be lost)
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("ebridge serve exited with %s before answering /health:\n%s" %
                                  (self.proc.returncode, self.log()))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
                pass
            time.sleep(0.02)
        self.kill9()
        raise ServerError("ebridge serve did not answer /health within %.0f s:\n%s" % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit code (0 expected)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise ServerError("ebridge serve did not stop within %.0f s of SIGTERM" % timeout)
        return self.proc.returncode

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, same_port=True):
        rc = self.stop()
        if rc not in (0, None, -9):
            raise ServerError("ebridge serve exited with %s on SIGTERM:\n%s" % (rc, self.log()))
        if not same_port:
            self.port = free_port()
        return self.start()

    def store_counts(self):
        """(events, jobs) from the 'store: opened' log line of the current run."""
        m = re.search(r'msg="store: opened".*?events=(\d+) jobs=(\d+)', self.log())
        return (int(m.group(1)), int(m.group(2))) if m else None

    def cleanup(self):
        self.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False


def stop_all():
    for s in _servers:
        try:
            s.cleanup()
        except Exception:
            pass


atexit.register(stop_all)


# ---- boto3 -------------------------------------------------------------------------------
def boto3_client(server_or_url, region="us-east-1", key=DUMMY_KEY, secret=DUMMY_SECRET, token=None):
    import boto3
    from botocore.config import Config
    url = server_or_url.url if isinstance(server_or_url, Server) else server_or_url
    sess = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                                 region_name=region)
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return sess.client("events", endpoint_url=url, config=cfg)


# ---- raw HTTP ------------------------------------------------------------------------------
def raw_call(url, op, body, headers=None, timeout=30):
    """POST an AWS JSON 1.1 request as-is. body: dict/list (serialised) or str/bytes (sent verbatim).
    Returns (status, headers dict with lower-case names, parsed JSON body or None, raw body bytes)."""
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    h = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents." + op}
    if headers:
        h.update(headers)
    req = urllib.request.Request(url + "/", data=data, method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    hd = {k.lower(): v for k, v in hdrs.items()}
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, hd, parsed, raw


# ---- AWS CLI -------------------------------------------------------------------------------
def check_aws_cli():
    out = subprocess.run([AWS_CLI, "--version"], capture_output=True, text=True, timeout=60)
    v = (out.stdout + out.stderr).strip()
    if not v.startswith("aws-cli/2."):
        raise RuntimeError("%s --version says %r; AWS CLI v2 expected" % (AWS_CLI, v))
    return v


def aws_cli(server_or_url, *args, region="us-east-1", key=DUMMY_KEY, secret=DUMMY_SECRET, check=False):
    """Run `aws --endpoint-url URL --region R --output json <args>`; returns (rc, parsed stdout or None, stderr)."""
    url = server_or_url.url if isinstance(server_or_url, Server) else server_or_url
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=region,
               AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
    cmd = [AWS_CLI, "--endpoint-url", url, "--region", region, "--output", "json", "--no-cli-pager"] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    parsed = None
    if p.stdout.strip():
        try:
            parsed = json.loads(p.stdout)
        except ValueError:
            parsed = None
    if check and p.returncode != 0:
        raise RuntimeError("aws %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p.returncode, parsed, p.stderr


# ---- checks ----------------------------------------------------------------------------------
class Checker:
    def __init__(self, title):
        self.title = title
        self.npass = 0
        self.failures = []
        self.t0 = time.monotonic()
        print("== %s" % title, flush=True)

    def ok(self, cond, what, detail=""):
        if cond:
            self.npass += 1
            print("ok   - %s" % what, flush=True)
        else:
            self.failures.append((what, detail))
            print("FAIL - %s%s" % (what, ("\n       " + str(detail).replace("\n", "\n       ")) if detail else ""),
                  flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got:  %r\nwant: %r" % (got, want))

    def section(self, name):
        print("-- %s" % name, flush=True)

    def run(self, name, fn, *args):
        """Run one group of checks; an unexpected exception is one failure, not the end of the run."""
        self.section(name)
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report and continue
            self.failures.append((name + ": unexpected exception", repr(e)))
            print("FAIL - %s: unexpected exception\n%s" % (name, traceback.format_exc()), flush=True)

    def finish(self):
        dt = time.monotonic() - self.t0
        print("== %s: %d passed, %d failed (%.1f s)" % (self.title, self.npass, len(self.failures), dt), flush=True)
        if self.failures:
            print("failed checks:")
            for w, _ in self.failures:
                print("  - " + w)
        return 1 if self.failures else 0


def binary_from_argv():
    if len(sys.argv) < 2:
        sys.exit("usage: %s <path/to/ebridge>" % sys.argv[0])
    b = sys.argv[1]
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        sys.exit("not an executable: %s" % b)
    return os.path.abspath(b)
