#!/usr/bin/env python3
"""Issue 14: one system-mode daemon shared by two real Unix users.

Needs root (it creates the users and starts `amld --system`); exits 77
(ctest's skip code) otherwise. Everything it makes lives under one temp folder
in /tmp, reachable by the test users whatever folder the build sits in: the
daemon's data dir and socket, and copies of `aml` and the build's shared
libraries it loads (the clone may be under /root, which others cannot enter).
The users are removed, with their homes, at the end.

usage: multiuser_test.py BUILD_DIR [--slurm | --ssh]

--slurm: only the Slurm part (MultiUserSlurm), against the private cluster of
the ctest fixture `slurm` (SLURM_CONF and AMLD_TEST_SLURM_STATE set): a job
submitted in system mode is its submitter's (squeue, the job's processes,
its shared folder and the files copied back).
--ssh: only the SSH part (MultiUserSsh), against the private sshd of the
fixture `sshd` (AMLD_TEST_SSH_STATE set): ssh and rsync run as the submitter,
with their own key and known_hosts, never the daemon's.
"""
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
SLURM = "--slurm" in sys.argv[2:]
SSH = "--ssh" in sys.argv[2:]
SUFFIX = "%d" % (os.getpid() % 100000)
USERS = ("amldmu_a" + SUFFIX, "amldmu_b" + SUFFIX)
ADMIN_GROUP = "amldmu_adm" + SUFFIX
# Caps from amld.yaml that the burst must respect.
MAX_RUNNING_PER_USER = 2


def eventually(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def seconds(rfc3339):
    """Seconds since the epoch of proto JSON's timestamp ("...T12:00:01.5Z")."""
    import datetime
    whole, _, frac = rfc3339.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def copy_aml(dest):
    """aml and the shared libraries of the build it loads, into dest/."""
    os.makedirs(os.path.join(dest, "lib"), mode=0o755)
    aml = os.path.join(BUILD, "bin", "aml")
    shutil.copy2(aml, os.path.join(dest, "aml"))
    out = subprocess.run(["ldd", aml], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) != 2:
            continue
        path = parts[1].split("(")[0].strip()
        if path.startswith(BUILD):
            shutil.copy2(path, os.path.join(dest, "lib", os.path.basename(path)))
    for root, dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o755)


class SystemDaemon(unittest.TestCase):
    """Two users, an admin group and an `amld --system` on a private socket."""
    EXTRA_CONFIG = ""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="amld-multiuser-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.users = {}
        subprocess.run(["groupadd", ADMIN_GROUP], check=True)
        for name in USERS:
            subprocess.run(["useradd", "-m", "-U", "-s", "/bin/sh", name], check=True)
            pw = pwd.getpwnam(name)
            cls.users[name] = pw
        cls.bin = os.path.join(cls.tmp, "bin")
        copy_aml(cls.bin)
        # What runs as the users must be theirs to run (as when installed in
        # /usr/local): the supervisor, the launcher, the SDK.
        for tool in ("amld-shim", "amld-launch"):
            shutil.copy2(os.path.join(BUILD, "bin", tool), os.path.join(cls.bin, tool))
        cls.python = os.path.join(cls.tmp, "python")
        shutil.copytree(os.path.join(BUILD, "python", "amld"), os.path.join(cls.python, "amld"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(cls.python):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        cls.data = os.path.join(cls.tmp, "data")
        cls.sock = os.path.join(cls.tmp, "run", "amld.sock")
        cls.config = os.path.join(cls.tmp, "amld.yaml")
        # Managed environments come from a wheelhouse made when a test needs it.
        cls.wheelhouse = os.path.join(cls.tmp, "wheelhouse")
        with open(cls.config, "w") as f:
            f.write("max_concurrent_runs: 4\ncpus: 4\nkill_grace_seconds: 2\n"
                    "keep_finished_run_folders: -1\n"
                    "environments:\n  no_index: true\n  find_links: [%s]\n" % cls.wheelhouse +
                    "per_user:\n  max_running_runs: %d\n"
                    "admin_group: %s\n" % (MAX_RUNNING_PER_USER, ADMIN_GROUP) +
                    cls.EXTRA_CONFIG)
        cls.log = open(os.path.join(cls.tmp, "amld.stderr"), "w")
        cls.daemon = subprocess.Popen(
            [os.path.join(BUILD, "bin", "amld"), "--system", "--data-dir", cls.data,
             "--socket", cls.sock, "--config", cls.config,
             "--shim", os.path.join(cls.bin, "amld-shim")],
            stdout=cls.log, stderr=cls.log)
        eventually(lambda: os.path.exists(cls.sock) or cls.daemon.poll() is not None,
                   "the system daemon's socket")
        if cls.daemon.poll() is not None:
            raise AssertionError("amld --system exited: " +
                                 read(os.path.join(cls.tmp, "amld.stderr")))
        for name in USERS:
            cls.make_project(name)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "daemon", None) is not None:
            cls.daemon.send_signal(signal.SIGTERM)
            try:
                cls.daemon.wait(30)
            except subprocess.TimeoutExpired:
                cls.daemon.kill()
            cls.log.close()
        # Runs left behind run as the test users: end them before userdel.
        for name in USERS:
            subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        for name in USERS:
            subprocess.run(["userdel", "-r", "-f", name], check=False,
                           stderr=subprocess.DEVNULL)
        subprocess.run(["groupdel", ADMIN_GROUP], check=False)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def make_project(cls, name):
        """~/proj with train.py; private to its user (0700)."""
        pw = cls.users[name]
        proj = os.path.join(pw.pw_dir, "proj")
        os.makedirs(proj, exist_ok=True)
        with open(os.path.join(proj, "train.py"), "w") as f:
            f.write(TRAIN_PY)
        os.makedirs(os.path.join(proj, "secret"), exist_ok=True)
        with open(os.path.join(proj, "secret", "key.txt"), "w") as f:
            f.write("only %s may read this\n" % name)
        for root, dirs, files in os.walk(proj):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for x in files:
                os.chown(os.path.join(root, x), pw.pw_uid, pw.pw_gid)
        os.chmod(pw.pw_dir, 0o700)

    # -- helpers -----------------------------------------------------------

    def aml(self, name, *args, env=None, check=True):
        pw = self.users[name]
        environment = {
            "PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "USER": name, "LOGNAME": name,
            "LD_LIBRARY_PATH": os.path.join(self.bin, "lib"), "AMLD_SOCKET": self.sock,
            "XDG_CACHE_HOME": os.path.join(pw.pw_dir, ".cache"), "NO_COLOR": "1",
        }
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        cmd = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--init-groups",
               "--", os.path.join(self.bin, "aml")] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, env=environment,
                           cwd=os.path.join(pw.pw_dir, "proj"))
        if check and p.returncode != 0:
            raise AssertionError("%s: aml %s failed (%d): %s%s" %
                                 (name, " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def submit(self, name, *script_args, extra=()):
        p = self.aml(name, "run", "submit", "-q", "-e", "mu", *extra, "train.py", "--",
                     *script_args)
        return p.stdout.strip()

    def run_record(self, name, run_id):
        return json.loads(self.aml(name, "run", "show", run_id, "--output", "json").stdout)

    def wait_status(self, name, run_id, statuses, timeout=60):
        def check():
            r = self.run_record(name, run_id)
            return r if r["status"] in statuses else None
        return eventually(check, "run %s to be %s" % (run_id, statuses), timeout)

    def run_dir(self, run_id):
        return os.path.join(self.data, "runs", run_id)

    def aml_root(self, *args):
        """aml as root, who may define compute targets."""
        p = subprocess.run([os.path.join(self.bin, "aml")] + list(args), capture_output=True,
                           text=True, env=dict(os.environ, AMLD_SOCKET=self.sock,
                                               LD_LIBRARY_PATH=os.path.join(self.bin, "lib")))
        if p.returncode != 0:
            raise AssertionError("aml %s failed (%d): %s%s" %
                                 (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def assert_all_theirs(self, root, pw):
        """`root` and everything below it belong to pw's user."""
        for dirpath, dirs, files in os.walk(root):
            self.assertEqual(os.lstat(dirpath).st_uid, pw.pw_uid, dirpath)
            for entry in dirs + files:
                p = os.path.join(dirpath, entry)
                self.assertEqual(os.lstat(p).st_uid, pw.pw_uid, p)


class MultiUser(SystemDaemon):
    # -- tests -------------------------------------------------------------

    def test_00_system_units_verify(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed")
        units = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                             "systemd", "system")
        out = os.path.join(self.tmp, "units")
        os.makedirs(out)
        for name in ("amld.service", "amld.socket"):
            text = read(os.path.join(units, name))
            self.assertNotIn("%t", text)  # a system unit: fixed paths
            text = text.replace("/usr/local/bin/amld", os.path.join(BUILD, "bin", "amld"))
            write(os.path.join(out, name), text)
        service = read(os.path.join(units, "amld.service"))
        self.assertIn("ExecStart=/usr/local/bin/amld --system", service)
        self.assertIn("KillMode=process", service)
        socket_unit = read(os.path.join(units, "amld.socket"))
        self.assertIn("ListenStream=/run/amld/amld.sock", socket_unit)
        self.assertIn("SocketMode=0666", socket_unit)
        p = subprocess.run(["systemd-analyze", "verify", os.path.join(out, "amld.socket"),
                            os.path.join(out, "amld.service")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_01_daemon_status_says_system(self):
        a = USERS[0]
        out = self.aml(a, "daemon", "status").stdout
        self.assertIn("mode:          system", out)
        info = json.loads(self.aml(a, "daemon", "status", "--output", "json").stdout)
        self.assertEqual(info["mode"], "SYSTEM")
        # Found without AMLD_SOCKET when no user daemon answers.
        empty = tempfile.mkdtemp(dir=self.tmp)
        os.chmod(empty, 0o777)
        found = self.aml(a, "daemon", "status",
                         env={"AMLD_SOCKET": None, "AMLD_SYSTEM_SOCKET": self.sock,
                              "XDG_RUNTIME_DIR": empty}).stdout
        self.assertIn("socket:        " + self.sock, found)
        self.assertIn("mode:          system", found)

    def test_02_runs_run_as_their_submitter(self):
        ids = {}
        for name in USERS:
            ids[name] = self.submit(name, "who")
        for name, run_id in ids.items():
            pw = self.users[name]
            r = self.wait_status(name, run_id, ("COMPLETED", "FAILED"))
            self.assertEqual(r["status"], "COMPLETED", r)
            self.assertEqual(r["submitter_uid"], pw.pw_uid)
            who = json.loads(self.aml(name, "run", "download", run_id, "outputs/who.json",
                                      "-o", "-").stdout)
            self.assertEqual(who["uid"], pw.pw_uid)
            self.assertEqual(who["euid"], pw.pw_uid)
            self.assertEqual(who["gid"], pw.pw_gid)
            self.assertEqual(sorted(who["groups"]), sorted(os.getgrouplist(name, pw.pw_gid)))
            self.assertEqual(who["HOME"], pw.pw_dir)
            self.assertEqual(who["USER"], name)
            self.assertEqual(who["LOGNAME"], name)
            # Every file of the run folder is the submitter's; the folder is
            # private to them.
            root = self.run_dir(run_id)
            st = os.lstat(root)
            self.assertEqual((st.st_uid, st.st_gid), (pw.pw_uid, pw.pw_gid))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
            self.assert_all_theirs(root, pw)
        # The CAS and the database stay root's alone.
        for private in ("cas", "amld.db"):
            st = os.stat(os.path.join(self.data, private))
            self.assertEqual(st.st_uid, 0)
            self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077, 0, private)

    def test_03_processes_belong_to_the_submitter(self):
        a = USERS[0]
        run_id = self.submit(a, "hold")
        pidfile = os.path.join(self.run_dir(run_id), "wd", "outputs", "pid")
        pid = int(eventually(lambda: os.path.exists(pidfile) and read(pidfile).strip(),
                             "the run's pid"))
        with open("/proc/%d/status" % pid) as f:
            uids = [l for l in f if l.startswith(("Uid:", "Gid:"))]
        pw = self.users[a]
        self.assertEqual(uids[0].split()[1:], [str(pw.pw_uid)] * 4)
        self.assertEqual(uids[1].split()[1:], [str(pw.pw_gid)] * 4)
        self.aml(a, "run", "cancel", run_id)
        self.assertEqual(self.wait_status(a, run_id, ("CANCELED", "FAILED"))["status"],
                         "CANCELED")

    def test_04_others_see_but_cannot_touch(self):
        a, b = USERS
        run_id = self.submit(a, "hold")
        self.wait_status(a, run_id, ("RUNNING",))
        # B sees A's run in the list and its status...
        listed = json.loads(self.aml(b, "run", "list", "--output", "json").stdout)
        runs = listed["runs"] if isinstance(listed, dict) else listed
        mine = [r for r in runs if r["id"] == run_id]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["status"], "RUNNING")
        # ...without its snapshot digest (which would let B submit A's source).
        self.assertNotIn("snapshot_root", mine[0].get("config", {}))
        table = self.aml(b, "run", "list").stdout
        self.assertIn(a, table)
        # ...but cannot cancel it, read its logs, list or download its files.
        for args in (("run", "cancel", run_id), ("run", "logs", run_id),
                     ("run", "files", run_id), ("run", "metrics", run_id),
                     ("run", "download", run_id, "outputs/pid", "-o", "-")):
            p = self.aml(b, *args, check=False)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn("belongs to %s (uid %d)" % (a, self.users[a].pw_uid), p.stderr, args)
        self.assertEqual(self.run_record(a, run_id)["status"], "RUNNING")
        # A run of B cannot read A's run folder.
        spy = self.submit(b, "spy", self.run_dir(run_id))
        r = self.wait_status(b, spy, ("COMPLETED", "FAILED"))
        self.assertEqual(r["status"], "COMPLETED", r)
        seen = self.aml(b, "run", "download", spy, "outputs/spy.txt", "-o", "-").stdout
        self.assertEqual(seen.strip(), "PermissionError")
        # B cannot snapshot A's private folder (B's client walks with B's rights)
        # nor have the daemon watch it (it reads a watched folder with his).
        a_proj = os.path.join(self.users[a].pw_dir, "proj")
        p = self.aml(b, "run", "submit", "-s", a_proj, "train.py", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Permission denied", self.probe(b, a_proj, WATCH_PROBE, "watch")["watch"])
        # B cannot create compute targets; the owner can cancel.
        p = self.aml(b, "compute", "create", "box", "--type", "ssh", "--host", "localhost",
                     check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("may create compute targets", p.stderr)
        self.aml(a, "run", "cancel", run_id)
        self.wait_status(a, run_id, ("CANCELED",))

    def test_05_admin_group_member_may_cancel(self):
        a, b = USERS
        run_id = self.submit(a, "hold")
        self.wait_status(a, run_id, ("RUNNING",))
        subprocess.run(["usermod", "-aG", ADMIN_GROUP, b], check=True)
        try:
            self.aml(b, "run", "cancel", run_id)
        finally:
            subprocess.run(["gpasswd", "-d", b, ADMIN_GROUP], check=True,
                           stdout=subprocess.DEVNULL)
        self.assertEqual(self.wait_status(a, run_id, ("CANCELED",))["status"], "CANCELED")

    def test_06_per_user_caps_under_a_burst(self):
        ids = {name: [] for name in USERS}
        for i in range(20):
            for name in USERS:
                ids[name].append(self.submit(name, "short"))
        usage_seen = []
        def all_done():
            info = json.loads(self.aml(USERS[0], "daemon", "status", "--output", "json").stdout)
            usage_seen.extend(info.get("user_usage", []))
            return not info.get("run_counts")
        eventually(all_done, "the burst to finish", timeout=300)
        for u in usage_seen:
            self.assertLessEqual(u.get("running", 0), MAX_RUNNING_PER_USER, u)
        # From the records: never more than the cap of one user's runs at once,
        # and both users' runs started interleaved (turns), not one user's 20 first.
        starts = []
        for name, run_ids in ids.items():
            intervals = []
            for run_id in run_ids:
                r = self.run_record(name, run_id)
                self.assertEqual(r["status"], "COMPLETED", r)
                times = {h["status"]: seconds(h["time"]) for h in r["history"]}
                intervals.append((times["PREPARING"], times["COMPLETED"]))
                starts.append((times["PREPARING"], name))
            for t, _ in intervals:
                overlapping = sum(1 for s, e in intervals if s <= t < e)
                self.assertLessEqual(overlapping, MAX_RUNNING_PER_USER)
        starts.sort()
        first_ten = [name for _, name in starts[:10]]
        self.assertGreaterEqual(min(first_ten.count(n) for n in USERS), 4, first_ten)


    def test_07_a_users_distributed_and_azureml_runs(self):
        """amld-launch and the azureml alias serve an ordinary user."""
        a = USERS[0]
        pw = self.users[a]
        job = os.path.join(pw.pw_dir, "proj", "dist.yml")
        write(job, "experiment_name: mu\ncommand: /usr/bin/python3 train.py rank\n"
                   "distribution:\n  type: pytorch\n  process_count_per_instance: 2\n")
        os.chown(job, pw.pw_uid, pw.pw_gid)
        run = json.loads(self.aml(a, "--output", "json", "run", "submit", "-f", "dist.yml",
                                  "--wait", check=False).stdout)
        self.assertEqual(run["status"], "COMPLETED", run)
        for rank in (0, 1):
            logs = self.aml(a, "run", "logs", run["id"], "--rank", str(rank)).stdout
            self.assertIn("rank %d of 2 uid %d" % (rank, pw.pw_uid), logs)
        # `from azureml.core import Run` in a run of hers: the alias from the
        # daemon's data dir, amld.core from her PYTHONPATH.
        run_id = self.aml(a, "run", "submit", "-q", "-e", "mu", "train.py", "--", "azureml",
                          env={"PYTHONPATH": self.python}).stdout.strip()
        r = self.wait_status(a, run_id, ("COMPLETED", "FAILED"))
        self.assertEqual(r["status"], "COMPLETED", self.aml(a, "run", "logs", run_id).stdout)
        metrics = self.aml(a, "run", "metrics", run_id, "--output", "json").stdout
        self.assertIn(str(pw.pw_uid), metrics)

    def test_08_a_digest_alone_reads_nothing(self):
        """CAS content only for whom sent it: B learns nothing from A's digest."""
        a, b = USERS
        secret = read(os.path.join(self.users[a].pw_dir, "proj", "secret", "key.txt"))
        self.submit(a, "short")  # her project, secret/ included, is uploaded
        mine = self.probe(a, secret)
        self.assertEqual((mine["missing_before"], mine["complete"], mine["submit"]),
                         (0, True, "OK"), mine)
        theirs = self.probe(b, secret)
        # Held, but reported missing to B: he cannot tell A has it...
        self.assertEqual((theirs["missing_before"], theirs["complete"]), (1, False), theirs)
        # ...nor run a tree that names it by digest.
        self.assertTrue(theirs["submit"].startswith("FAILED_PRECONDITION"), theirs)
        self.assertIn("blobs you never sent this daemon", theirs["submit"])
        # Sending the bytes is the proof: then it is his to use too.
        self.assertEqual((theirs["missing_after"], theirs["resubmit"]), (0, "OK"), theirs)

    def test_13_managed_environments_are_built_as_their_user(self):
        """A pip environment in system mode: built by its submitter into their own cache,
        run from there; the other user with the same spec gets their own."""
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "python"))
        from wheelhouse import build_wheel
        os.makedirs(self.wheelhouse, mode=0o755)
        for package in ("amldtest-beta", "amldtest-alpha"):
            build_wheel(package, self.wheelhouse, os.path.join(self.tmp, "wheel-src"))
        for f in os.listdir(self.wheelhouse):
            os.chmod(os.path.join(self.wheelhouse, f), 0o644)
        prefixes = {}
        for name in USERS:
            pw = self.users[name]
            proj = os.path.join(pw.pw_dir, "proj")
            write(os.path.join(proj, "conda.yml"),
                  "dependencies:\n  - pip:\n    - amldtest-alpha\n")
            write(os.path.join(proj, "job.yml"),
                  "experiment_name: mu\ncode: .\ncommand: python envcheck.py\n"
                  "environment:\n  conda_file: conda.yml\n")
            write(os.path.join(proj, "envcheck.py"), ENVCHECK_PY)
            for f in ("conda.yml", "job.yml", "envcheck.py"):
                os.chown(os.path.join(proj, f), pw.pw_uid, pw.pw_gid)
            run_id = self.aml(name, "run", "submit", "-q", "-f", "job.yml").stdout.strip()
            r = self.wait_status(name, run_id, ("COMPLETED", "FAILED"), timeout=180)
            self.assertEqual(r["status"], "COMPLETED", self.aml(name, "run", "logs", run_id).stdout)
            seen = json.loads(self.aml(name, "run", "download", run_id, "outputs/env.json",
                                       "-o", "-").stdout)
            self.assertEqual(seen["hello"], "alpha sees beta 42")
            self.assertEqual(seen["uid"], pw.pw_uid)
            # Its python is the venv's, in the submitter's own cache...
            cache = os.path.join(self.data, "envs", "users", str(pw.pw_uid))
            prefix = seen["prefix"]
            self.assertEqual(os.path.dirname(prefix), cache, seen)
            self.assertTrue(seen["executable"].startswith(prefix + "/bin/python"), seen)
            # ...which is theirs, every file (the build ran as them), and theirs alone.
            st = os.lstat(cache)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, 0o700))
            self.assert_all_theirs(cache, pw)
            prefixes[name] = prefix
            # The caller's cache is what `aml daemon status` counts.
            info = json.loads(self.aml(name, "daemon", "status", "--output", "json").stdout)
            self.assertEqual(int(info["environment_cache_count"]), 1, info)
        self.assertNotEqual(prefixes[USERS[0]], prefixes[USERS[1]])
        users = os.lstat(os.path.join(self.data, "envs", "users"))
        self.assertEqual((users.st_uid, stat.S_IMODE(users.st_mode)), (0, 0o711))
        # B can neither list A's cache nor read a file of A's environment.
        a, b = USERS
        pw_b = self.users[b]
        for cmd in (["ls", os.path.dirname(prefixes[a])], ["cat", prefixes[a] + "/pyvenv.cfg"]):
            p = subprocess.run(["setpriv", "--reuid=%d" % pw_b.pw_uid,
                                "--regid=%d" % pw_b.pw_gid, "--init-groups", "--"] + cmd,
                               capture_output=True, text=True, cwd="/")
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn("Permission denied", p.stderr)
        # `aml env prune` of a user acts on their own cache only (once the run that
        # held it is forgotten).
        eventually(lambda: self.aml(a, "env", "prune") and not os.path.exists(prefixes[a]),
                   "A's environment to be pruned")
        self.assertTrue(os.path.exists(prefixes[b]))
        # `aml env build` builds for its caller, as them, into their cache.
        write(os.path.join(self.tmp, "conda.yml"), "dependencies:\n  - pip:\n    - amldtest-alpha\n")
        write(os.path.join(self.tmp, "env.yml"), "name: mu-env\nconda_file: conda.yml\n")
        self.aml_root("env", "create", "-f", os.path.join(self.tmp, "env.yml"))
        out = self.aml(a, "env", "build", "mu-env").stdout
        cache_a = os.path.join(self.data, "envs", "users", str(self.users[a].pw_uid))
        self.assertIn("environment mu-env built", out)
        self.assertIn(" at " + cache_a + "/.build-", out)
        self.assert_all_theirs(cache_a, self.users[a])

    def probe(self, name, secret, script=None, *args):
        """PROBE (or `script`) as `name`, over the daemon's gRPC API."""
        pw = self.users[name]
        p = subprocess.run(
            ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--init-groups",
             "--", "/usr/bin/python3", "-c", script or PROBE, self.sock, secret] + list(args),
            capture_output=True, text=True, cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "PYTHONPATH": self.python})
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_09_model_files_only_for_their_owners(self):
        """A model's metadata is everyone's; its files only its owner's."""
        a, b = USERS
        run_id = self.submit(a, "who")
        self.assertEqual(self.wait_status(a, run_id, ("COMPLETED", "FAILED"))["status"],
                         "COMPLETED")
        model = "mu-model-" + SUFFIX
        mine = self.probe(a, model, MODEL_PROBE, run_id)
        self.assertEqual((mine["register_from_run"], mine["download"]), ("OK", "OK"), mine)
        theirs = self.probe(b, model, MODEL_PROBE, run_id)
        owner = "belongs to %s (uid %d)" % (a, self.users[a].pw_uid)
        self.assertEqual(theirs["get"], "OK", theirs)  # metadata is open to all
        self.assertTrue(theirs["download"].startswith("PERMISSION_DENIED"), theirs)
        self.assertIn(owner, theirs["download"])
        # Nor can B make the files his: not from A's run, not by their digest.
        self.assertTrue(theirs["register_from_run"].startswith("PERMISSION_DENIED"), theirs)
        self.assertIn(owner, theirs["register_from_run"])
        self.assertTrue(theirs["register_by_digest"].startswith("FAILED_PRECONDITION"), theirs)
        self.assertIn("never sent to this daemon by you", theirs["register_by_digest"])
        # The CLI says the same; the owner downloads.
        out = os.path.join(self.users[b].pw_dir, "dl")
        p = self.aml(b, "model", "download", model, "-d", out, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(owner, p.stderr)
        dest = os.path.join(self.users[a].pw_dir, "dl")
        self.aml(a, "model", "download", model, "-d", dest)
        self.assertEqual(json.loads(read(os.path.join(dest, "who.json")))["uid"],
                         self.users[a].pw_uid)

    def test_11_a_user_watches_her_own_folder(self):
        """Watched with her rights: she submits from it; B cannot watch, list or unwatch it."""
        a, b = USERS
        pw = self.users[a]
        folder = os.path.join(pw.pw_dir, "watched")
        shutil.copytree(os.path.join(pw.pw_dir, "proj"), folder)
        for root, dirs, files in os.walk(folder):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for x in files:
                os.chown(os.path.join(root, x), pw.pw_uid, pw.pw_gid)
        os.chmod(folder, 0o700)
        self.aml(a, "snapshot", "watch", folder)
        self.assertIn(folder, self.aml(a, "snapshot", "list").stdout)
        # Root (an admin) sees every user's watched folders, with whose each is.
        listed = self.aml_root("snapshot", "list").stdout
        self.assertIn("OWNER", listed.splitlines()[0])
        row = next(line for line in listed.splitlines() if line.startswith(folder))
        self.assertEqual(row.split()[1], a, listed)
        p = json.loads(self.aml(a, "--output", "json", "run", "submit", "-e", "mu", "-s", folder,
                                "train.py", "--", "who").stdout)
        self.assertEqual(p["snapshot_source"]["kind"], "watched_root", p)  # the watch served it
        r = self.wait_status(a, p["run_id"], ("COMPLETED", "FAILED"))
        self.assertEqual(r["status"], "COMPLETED", r)
        # B may watch folders of his own, not hers (his client cannot even
        # look at it; the daemon, asked directly, reads it as him).
        self.assertIn("Permission denied", self.probe(b, folder, WATCH_PROBE, "watch")["watch"])
        self.assertNotIn(folder, self.aml(b, "snapshot", "list").stdout)
        theirs = self.probe(b, folder, WATCH_PROBE, "sync", "unwatch")
        for call in ("sync", "unwatch"):
            self.assertTrue(theirs[call].startswith("PERMISSION_DENIED"), theirs)
            self.assertIn("is watched by %s (uid %d)" % (a, pw.pw_uid), theirs[call])
        self.aml(a, "snapshot", "unwatch", folder)

    def test_10_a_partial_upload_is_its_senders(self):
        """B learns nothing of A's interrupted Write, and cannot continue it."""
        a, b = USERS
        text = "partial upload %s %f\n" % (SUFFIX, time.time())
        started = self.probe(a, text, WRITE_PROBE, "start")
        half = started["half"]
        self.assertEqual(started["committed"], half, started)
        theirs = self.probe(b, text, WRITE_PROBE, "resume")
        self.assertEqual(theirs["committed"], 0, theirs)
        self.assertTrue(theirs["resume"].startswith("INVALID_ARGUMENT"), theirs)
        self.assertEqual(self.probe(a, text, WRITE_PROBE, "query")["committed"], half)
        mine = self.probe(a, text, WRITE_PROBE, "resume")
        self.assertEqual((mine["committed"], mine["resume"]), (half, "OK"), mine)

    def test_12_the_web_view_shows_each_user_what_aml_would(self):
        """Issue 16 in system mode: every user may open the view, reads as
        their token's user, and meets the same rule as `aml`."""
        import http.cookiejar
        import urllib.error
        import urllib.request
        a, b = USERS
        a_run, b_run = (self.aml(name, "run", "submit", "-q", "-e", "mu", "train.py", "--",
                                 "azureml", env={"PYTHONPATH": self.python}).stdout.strip()
                        for name in (a, b))
        for name, run_id in ((a, a_run), (b, b_run)):
            r = self.wait_status(name, run_id, ("COMPLETED", "FAILED"))
            self.assertEqual(r["status"], "COMPLETED", r)

        def view(name):
            """An opener holding `name`'s cookie, and the view's base URL."""
            link = json.loads(self.aml(name, "ui", "--no-open", "--output", "json").stdout)
            opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            opener.open(link["url"], timeout=10).read()  # sets the cookie
            return opener, link["base_url"].rstrip("/")

        def get(opener_base, path):
            opener, base = opener_base
            try:
                with opener.open(base + path, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        va, vb = view(a), view(b)
        status, body = get(vb, "/api/info")
        self.assertEqual((status, json.loads(body)["user"]), (200, b), body)
        # B lists everyone's runs, A's with its owner...
        status, body = get(vb, "/api/runs?experiment=mu")
        self.assertEqual(status, 200, body)
        rows = {r["id"]: r for r in json.loads(body)["runs"]}
        self.assertEqual(rows[a_run]["user"], a)
        self.assertEqual(rows[a_run]["status"], "COMPLETED")
        # ...but A's logs, files and metrics are A's: 403 naming her.
        owner = "belongs to %s (uid %d)" % (a, self.users[a].pw_uid)
        for path in ("/log", "/log?download=1", "/files", "/metrics",
                     "/file?path=outputs/who.json"):
            status, body = get(vb, "/api/runs/%s%s" % (a_run, path))
            self.assertEqual(status, 403, (path, body))
            self.assertIn(owner, body, path)
        # The runs table's metric columns leave A's run out for B.
        status, body = get(vb, "/api/metrics/last?runs=%s,%s" % (a_run, b_run))
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(json.loads(body)), [b_run])
        self.assertIn("uid", json.loads(body)[b_run])
        # Each reads their own; A's view reads A's run.
        for v, run_id, name in ((vb, b_run, b), (va, a_run, a)):
            status, body = get(v, "/api/runs/%s/metrics" % run_id)
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["metrics"]["uid"]["values"],
                             [self.users[name].pw_uid])
            self.assertEqual(get(v, "/api/runs/%s/log" % run_id)[0], 200)
        # The viewer key counts only on the daemon's in-process channel: B
        # naming A in it over the socket is still B.
        pw = self.users[b]
        spoof = subprocess.run(
            ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--init-groups",
             "--", "/usr/bin/python3", "-c", SPOOF_VIEWER, self.sock, a_run,
             str(self.users[a].pw_uid)],
            capture_output=True, text=True, cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "PYTHONPATH": self.python})
        self.assertEqual(spoof.stdout.strip(), "PERMISSION_DENIED", spoof.stderr)
        # Root (an admin) reads A's run through its own view.
        link = json.loads(self.aml_root("ui", "--no-open", "--output", "json").stdout)
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        opener.open(link["url"], timeout=10).read()
        self.assertEqual(get((opener, link["base_url"].rstrip("/")),
                             "/api/runs/%s/metrics" % a_run)[0], 200)


PROBE = r'''
import hashlib, json, sys
import grpc
from amld.v1 import cas_pb2, cas_pb2_grpc, common_pb2, runs_pb2, runs_pb2_grpc
sock, text = sys.argv[1], sys.argv[2].encode()
channel = grpc.insecure_channel("unix://" + sock)
cas, runs = cas_pb2_grpc.CasStub(channel), runs_pb2_grpc.RunsStub(channel)

def digest(data):
    return common_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))

def missing(d):
    request = cas_pb2.FindMissingBlobsRequest(blob_digests=[d])
    return len(cas.FindMissingBlobs(request).missing_blob_digests)

def upload(d, data):
    item = cas_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=data)
    cas.BatchUpdateBlobs(cas_pb2.BatchUpdateBlobsRequest(requests=[item]))

def submit(root):
    config = runs_pb2.RunConfig(experiment_name="mu", snapshot_root=root, command="cat key.txt")
    try:
        runs.SubmitRun(runs_pb2.SubmitRunRequest(config=config))
        return "OK"
    except grpc.RpcError as e:
        return e.code().name + ": " + e.details()

secret = digest(text)
out = {"missing_before": missing(secret)}
out["complete"] = cas.QueryWriteStatus(cas_pb2.QueryWriteStatusRequest(digest=secret)).complete
# A tree of one file named by its digest alone; the tree itself is sent.
tree = common_pb2.Directory(files=[common_pb2.FileNode(name="key.txt", digest=secret)])
tree = tree.SerializeToString(deterministic=True)
upload(digest(tree), tree)
out["submit"] = submit(digest(tree))
upload(secret, text)
out["missing_after"] = missing(secret)
out["resubmit"] = submit(digest(tree))
print(json.dumps(out))
'''

SPOOF_VIEWER = r'''
import sys
import grpc
from amld.v1 import runs_pb2, runs_pb2_grpc
sock, run_id, uid = sys.argv[1:]
runs = runs_pb2_grpc.RunsStub(grpc.insecure_channel("unix:" + sock))
try:
    runs.GetMetrics(runs_pb2.GetMetricsRequest(run_id=run_id),
                    metadata=[("amld-viewer-uid", uid)])
    print("READ")
except grpc.RpcError as e:
    print(e.code().name)
'''

MODEL_PROBE = r'''
import json, sys
import grpc
from amld.v1 import models_pb2, models_pb2_grpc
sock, name, run_id = sys.argv[1:4]
models = models_pb2_grpc.ModelsStub(grpc.insecure_channel("unix://" + sock))

def call(f):
    try:
        return "OK", f()
    except grpc.RpcError as e:
        return e.code().name + ": " + e.details(), None

out = {}
out["register_from_run"], _ = call(lambda: models.RegisterModel(models_pb2.RegisterModelRequest(
    name=name, run_id=run_id, run_path="outputs/who.json")))
out["get"], model = call(lambda: models.GetModel(models_pb2.GetModelRequest(name=name)))
if model is not None:
    out["register_by_digest"], _ = call(lambda: models.RegisterModel(
        models_pb2.RegisterModelRequest(name=name + "-copy", files=model.files,
                                        source_path="who.json", single_file=True)))
out["download"], _ = call(lambda: b"".join(c.data for c in models.DownloadModelFile(
    models_pb2.DownloadModelFileRequest(name=name, path="who.json"))))
print(json.dumps(out))
'''

WATCH_PROBE = r'''
import json, sys
import grpc
from amld.v1 import snapshots_pb2 as pb, snapshots_pb2_grpc
sock, path = sys.argv[1:3]
snapshots = snapshots_pb2_grpc.SnapshotsStub(grpc.insecure_channel("unix://" + sock))
calls = {
    "watch": lambda: snapshots.WatchRoot(pb.WatchRootRequest(path=path)),
    "sync": lambda: snapshots.GetWatchedSnapshot(pb.GetWatchedSnapshotRequest(path=path)),
    "unwatch": lambda: snapshots.UnwatchRoot(pb.UnwatchRootRequest(path=path)),
}
out = {}
for name in sys.argv[3:]:
    try:
        calls[name]()
        out[name] = "OK"
    except grpc.RpcError as e:
        out[name] = e.code().name + ": " + e.details()
print(json.dumps(out))
'''

WRITE_PROBE = r'''
import hashlib, json, sys
import grpc
from amld.v1 import cas_pb2, cas_pb2_grpc, common_pb2
sock, text, action = sys.argv[1:4]
cas = cas_pb2_grpc.CasStub(grpc.insecure_channel("unix://" + sock))
data = (text * 4096).encode()
d = common_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
half = len(data) // 2

def committed():
    return cas.QueryWriteStatus(cas_pb2.QueryWriteStatusRequest(digest=d)).committed_size

out = {"half": half}
if action == "start":  # the first half, then the stream stops
    cas.Write(iter([cas_pb2.WriteRequest(digest=d, write_offset=0, data=data[:half])]))
out["committed"] = committed()
if action == "resume":  # the second half, as if the first were the caller's
    try:
        cas.Write(iter([cas_pb2.WriteRequest(digest=d, write_offset=half, data=data[half:],
                                             finish_write=True)]))
        out["resume"] = "OK"
    except grpc.RpcError as e:
        out["resume"] = e.code().name + ": " + e.details()
print(json.dumps(out))
'''

ENVCHECK_PY = r'''
import json, os, sys
import amldtest_alpha
os.makedirs("outputs", exist_ok=True)
json.dump({"hello": amldtest_alpha.hello(), "uid": os.getuid(), "prefix": sys.prefix,
           "executable": sys.executable}, open("outputs/env.json", "w"))
'''

TRAIN_PY = r'''
import json, os, sys, time
mode = sys.argv[1]
os.makedirs("outputs", exist_ok=True)
if mode == "who":
    json.dump({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
               "groups": os.getgroups(), "HOME": os.environ.get("HOME"),
               "USER": os.environ.get("USER"), "LOGNAME": os.environ.get("LOGNAME")},
              open("outputs/who.json", "w"))
elif mode == "hold":
    with open("outputs/pid", "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)
elif mode == "spy":
    try:
        os.listdir(sys.argv[2])
        result = "read it"
    except PermissionError:
        result = "PermissionError"
    open("outputs/spy.txt", "w").write(result + "\n")
elif mode == "rank":
    print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], "uid", os.getuid())
elif mode == "azureml":
    from azureml.core import Run
    Run.get_context().log("uid", os.getuid())
elif mode == "short":
    time.sleep(0.3)
'''


class MultiUserSlurm(SystemDaemon):
    """Slurm targets in system mode: each job is its submitter's."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        state = os.environ["AMLD_TEST_SLURM_STATE"]
        # A work dir the daemon creates (so it must open it to the users'
        # jobs itself) inside the fixture's shared folder.
        cls.workdir = os.path.join(state, "shared", "mu-" + SUFFIX)
        shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "workdir", None):
            for name in USERS:
                subprocess.run(["scancel", "-u", name], check=False, stderr=subprocess.DEVNULL)
            shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def test_0_target(self):
        self.aml_root("compute", "create", "cluster", "--type", "slurm",
                      "--workdir", self.workdir)

    def job_of(self, name, run_id):
        placement = self.run_record(name, run_id).get("placement", "")
        self.assertTrue(placement.startswith("slurm:"), placement)
        return placement[len("slurm:"):].split()[0]

    def test_1_a_job_is_its_submitters(self):
        a, b = USERS
        pw = self.users[a]
        run_id = self.submit(a, "hold", extra=("-c", "cluster"))
        self.wait_status(a, run_id, ("RUNNING",))
        job = self.job_of(a, run_id)
        # Slurm's own record: the job is A's.
        squeue = subprocess.run(["squeue", "-h", "-j", job, "-o", "%U"], capture_output=True,
                                text=True, check=True).stdout.strip()
        self.assertEqual(squeue, str(pw.pw_uid))
        # So are its processes and its folder on the shared filesystem,
        # which others cannot enter; the work dir the daemon made lets
        # them through without listing it.
        shared = os.path.join(self.workdir, run_id)
        st = os.stat(shared)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (pw.pw_uid, pw.pw_gid, 0o700))
        self.assertEqual(stat.S_IMODE(os.stat(self.workdir).st_mode) & 0o011, 0o011)
        self.assert_all_theirs(shared, pw)
        pidfile = os.path.join(shared, "wd", "outputs", "pid")
        pid = int(eventually(lambda: os.path.exists(pidfile) and read(pidfile).strip(),
                             "the job's pid"))
        with open("/proc/%d/status" % pid) as f:
            ids = [l.split()[1:] for l in f if l.startswith(("Uid:", "Gid:"))]
        self.assertEqual(ids, [[str(pw.pw_uid)] * 4, [str(pw.pw_gid)] * 4])
        # B cannot cancel it; A can (scancel as A).
        p = self.aml(b, "run", "cancel", run_id, check=False)
        self.assertIn("belongs to %s" % a, p.stderr)
        self.aml(a, "run", "cancel", run_id)
        self.assertEqual(self.wait_status(a, run_id, ("CANCELED", "FAILED"))["status"],
                         "CANCELED")

    def test_2_each_users_job_runs_as_them(self):
        ids = {name: self.submit(name, "who", extra=("-c", "cluster")) for name in USERS}
        for name, run_id in ids.items():
            pw = self.users[name]
            r = self.wait_status(name, run_id, ("COMPLETED", "FAILED", "CANCELED"), timeout=120)
            self.assertEqual(r["status"], "COMPLETED", r)
            who = json.loads(self.aml(name, "run", "download", run_id, "outputs/who.json",
                                      "-o", "-").stdout)
            self.assertEqual((who["uid"], who["euid"], who["gid"]),
                             (pw.pw_uid, pw.pw_uid, pw.pw_gid))
            self.assertEqual((who["HOME"], who["USER"]), (pw.pw_dir, name))
            # The files copied back from the cluster are theirs as well.
            self.assert_all_theirs(self.run_dir(run_id), pw)
            # Slurm's record of the finished job names them.
            job = self.job_of(name, run_id)
            jobcomp = read(os.path.join(os.environ["AMLD_TEST_SLURM_STATE"], "jobcomp.txt"))
            line = [l for l in jobcomp.splitlines() if ("JobId=%s " % job) in l]
            self.assertEqual(len(line), 1, jobcomp)
            self.assertRegex(line[0], r"UserId=\S*\(%d\)" % pw.pw_uid)


class MultiUserSsh(SystemDaemon):
    """SSH targets in system mode: ssh and rsync run as the submitter.

    Both users log in as the fixture's user (the target's login, as an admin
    would set it); only A's own key is authorized there."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        state = os.environ["AMLD_TEST_SSH_STATE"]
        cls.ssh = dict(line.split("=", 1) for line in read(os.path.join(state, "env")).split())
        cls.authorized = os.path.join(state, "authorized_keys")
        cls.authorized_before = read(cls.authorized)
        a = USERS[0]
        pw = cls.users[a]
        dot_ssh = os.path.join(pw.pw_dir, ".ssh")
        os.makedirs(dot_ssh, mode=0o700)
        key = os.path.join(dot_ssh, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", a, "-f", key],
                       check=True)
        for path in (dot_ssh, key, key + ".pub"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        with open(cls.authorized, "a") as f:
            f.write(read(key + ".pub"))

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "authorized_before", None) is not None:
            write(cls.authorized, cls.authorized_before)
        super().tearDownClass()

    def test_0_targets(self):
        common = ("--type", "ssh", "--host", self.ssh["AMLD_TEST_SSH_HOST"], "--port",
                  self.ssh["AMLD_TEST_SSH_PORT"], "--user", self.ssh["AMLD_TEST_SSH_USER"],
                  "--workdir", "amld-mu-" + SUFFIX)
        self.aml_root("compute", "create", "box", *common)
        # The fixture's own key: root's file (0600), which no user may read.
        self.aml_root("compute", "create", "keyed", *common, "--identity-file",
                      self.ssh["AMLD_TEST_SSH_KEY"])

    def test_1_ssh_runs_with_the_submitters_own_key(self):
        a, b = USERS
        pw = self.users[a]
        run_id = self.submit(a, "who", extra=("-c", "box"))
        r = self.wait_status(a, run_id, ("COMPLETED", "FAILED"), timeout=120)
        self.assertEqual(r["status"], "COMPLETED", r)
        self.assertTrue(r.get("placement", "").startswith("ssh:"), r)
        who = json.loads(self.aml(a, "run", "download", run_id, "outputs/who.json",
                                  "-o", "-").stdout)
        login = pwd.getpwnam(self.ssh["AMLD_TEST_SSH_USER"])
        self.assertEqual(who["uid"], login.pw_uid)
        # Her own known_hosts learned the host; the daemon's has nothing.
        known = os.path.join(pw.pw_dir, ".ssh", "known_hosts")
        self.assertTrue(os.path.exists(known))
        self.assertEqual(os.stat(known).st_uid, pw.pw_uid)
        self.assertFalse(os.path.exists(os.path.join(self.data, "ssh", "known_hosts")))
        # Her connection's state is hers; her run folder, with what came
        # back from the host, too.
        state = os.path.join(self.data, "ssh-users", str(pw.pw_uid))
        self.assertEqual((os.stat(state).st_uid, stat.S_IMODE(os.stat(state).st_mode)),
                         (pw.pw_uid, 0o700))
        self.assert_all_theirs(self.run_dir(run_id), pw)
        # B has no key the host takes, and the daemon lends none: his run
        # fails with ssh's own refusal.
        spy = self.submit(b, "who", extra=("-c", "box"))
        r = self.wait_status(b, spy, ("COMPLETED", "FAILED"), timeout=120)
        self.assertEqual(r["status"], "FAILED", r)
        self.assertIn("Permission denied", json.dumps(r))

    def test_2_a_key_file_the_submitter_cannot_read_is_refused(self):
        a = USERS[0]
        run_id = self.submit(a, "who", extra=("-c", "keyed"))
        r = self.wait_status(a, run_id, ("COMPLETED", "FAILED"), timeout=120)
        self.assertEqual(r["status"], "FAILED", r)
        self.assertIn("%s may not read %s" % (a, self.ssh["AMLD_TEST_SSH_KEY"]), json.dumps(r))


if __name__ == "__main__":
    if BUILD is None:
        sys.exit("usage: multiuser_test.py BUILD_DIR [--slurm | --ssh]")
    if os.geteuid() != 0:
        print("multiuser_test: needs root (it creates Unix users); skipped")
        sys.exit(77)
    if SLURM and "AMLD_TEST_SLURM_STATE" not in os.environ:
        sys.exit("multiuser_test --slurm: run it through ctest (the slurm fixture)")
    if SSH and "AMLD_TEST_SSH_STATE" not in os.environ:
        sys.exit("multiuser_test --ssh: run it through ctest (the sshd fixture)")
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(
        MultiUserSlurm if SLURM else MultiUserSsh if SSH else MultiUser)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
