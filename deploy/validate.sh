#!/usr/bin/env bash
# Validates the deployment files in deploy/ as far as this machine allows, without Docker or a cluster:
#
#   - parses every YAML file and checks the invariants the deployment relies on (compose: 2 Custos
#     replicas + Postgres + Redis + a load balancer, healthchecks, depends_on; Kubernetes: replicas >= 2,
#     both probes, non-root + read-only root filesystem, a PodDisruptionBudget, the Secret's keys, …);
#   - checks that every CUSTOS_* variable and every custos.toml key used here exists in src/config.rs,
#     and that deploy/custos.toml.example lists every key with its default;
#   - runs, when installed: kubectl kustomize, kubeconform, kubernetes-validate, docker compose config,
#     systemd-analyze verify, nginx -t (>= 1.27.3), hadolint, shellcheck; prints "skipped: …" otherwise;
#   - with CUSTOS_BIN=path/to/custos: checks the example config and env files against the binary
#     (`custos config check`).
#
# Usage: deploy/validate.sh            (from any directory)
#        CUSTOS_BIN=target/release/custos deploy/validate.sh
# Exits non-zero when any check fails.

set -uo pipefail

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$DEPLOY")"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

failures=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
skip() { echo "skipped: $*"; }

# --- python3 + PyYAML ------------------------------------------------------------------------------
if ! command -v python3 >/dev/null 2>&1; then
    echo "FAIL: python3 is required" >&2
    exit 1
fi
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "PyYAML missing: installing it (pip install pyyaml)"
    python3 -m pip install --quiet pyyaml >/dev/null 2>&1 ||
        python3 -m pip install --quiet --user pyyaml >/dev/null 2>&1 ||
        python3 -m pip install --quiet --break-system-packages pyyaml >/dev/null 2>&1 || true
    if ! python3 -c 'import yaml' >/dev/null 2>&1; then
        echo "FAIL: PyYAML is required and could not be installed" >&2
        exit 1
    fi
fi

# --- static checks (python) ------------------------------------------------------------------------
# Also renders the kustomization with kubectl (when present) into $TMP/k8s.yaml for the tools below.
if python3 - "$ROOT" "$TMP" <<'PY'; then
import base64
import binascii
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT, TMP = sys.argv[1], sys.argv[2]
DEPLOY = os.path.join(ROOT, "deploy")
failures = 0


def ok(msg):
    print(f"ok: {msg}")


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL: {msg}", file=sys.stderr)


def warn(msg):
    print(f"warning: {msg}")


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


def rel(p):
    return os.path.relpath(p, ROOT)


def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()


# ---- config keys and defaults from src/config.rs ----------------------------------------------
config_rs = read(os.path.join(ROOT, "src", "config.rs"))
m = re.search(r"const KEYS: &\[&str\] = &\[(.*?)\];", config_rs, re.S)
if not m:
    fail("src/config.rs: cannot find `const KEYS` (the list of configuration keys)")
    sys.exit(1)
KEYS = re.findall(r'"([a-z0-9_]+)"', m.group(1))
check(len(KEYS) > 0, f"src/config.rs lists {len(KEYS)} configuration keys")
ENV_NAMES = {"CUSTOS_" + k.upper() for k in KEYS}
NON_CONFIG_ENV = {"CUSTOS_CONFIG"}  # read by the CLI, not a config key


def rust_default(expr):
    """Evaluates a Rust default expression from `impl Default for Config`, or raises ValueError."""
    e = expr.strip().rstrip(",")
    e = re.sub(r"\.into\(\)$", "", e)
    for wrap in ("SecretString(", "PathBuf::from(", "Some("):
        if e.startswith(wrap) and e.endswith(")"):
            return rust_default(e[len(wrap):-1])
    if e == "None":
        return None
    if re.fullmatch(r'"[^"\\]*"', e):
        return e[1:-1]
    if re.fullmatch(r"LogFormat::[A-Za-z]+", e):
        return e.split("::")[1].lower()
    if re.fullmatch(r"[0-9_ *+()]+", e):
        return int(eval(e.replace("_", ""), {"__builtins__": {}}))  # digits and * + ( ) only
    raise ValueError(e)


DEFAULTS = {}
dm = re.search(r"impl Default for Config \{.*?Config \{(.*?)\n\s*\}\n\s*\}", config_rs, re.S)
if dm:
    for line in dm.group(1).splitlines():
        lm = re.match(r"\s*([a-z0-9_]+):\s*(.+?),?\s*$", line)
        if not lm:
            continue
        try:
            DEFAULTS[lm.group(1)] = rust_default(lm.group(2))
        except ValueError:
            warn(f"cannot evaluate the default of `{lm.group(1)}` in src/config.rs; not compared")
else:
    warn("cannot find `impl Default for Config` in src/config.rs; defaults not compared")


def check_env_names(names, where):
    bad = sorted(n for n in names if n.startswith("CUSTOS_") and n not in ENV_NAMES | NON_CONFIG_ENV)
    check(not bad, f"{where}: every CUSTOS_* variable is a key of src/config.rs"
          + (f" (unknown: {', '.join(bad)})" if bad else ""))


# ---- every YAML file parses --------------------------------------------------------------------
yaml_docs = {}
for p in sorted(glob.glob(os.path.join(DEPLOY, "**", "*.y*ml"), recursive=True)):
    try:
        with open(p, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        yaml_docs[p] = docs
        ok(f"{rel(p)} parses ({len(docs)} document{'s' if len(docs) != 1 else ''})")
    except yaml.YAMLError as e:
        fail(f"{rel(p)} is not valid YAML: {e}")
check(len(yaml_docs) >= 7, f"found {len(yaml_docs)} YAML files under deploy/")

# ---- compose.yaml -------------------------------------------------------------------------------
compose_path = os.path.join(DEPLOY, "compose.yaml")
compose = (yaml_docs.get(compose_path) or [{}])[0]
services = compose.get("services") or {}
check(isinstance(services, dict) and services, "compose.yaml has services")


def image_of(svc):
    return str(svc.get("image") or "")


def is_custos(svc):
    build = svc.get("build") or {}
    dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
    return image_of(svc).split(":")[0].endswith("custos") or dockerfile.endswith("deploy/Dockerfile")


def command_of(svc):
    c = svc.get("command")
    return c if isinstance(c, list) else (str(c).split() if c else [])


def env_of(svc):
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) if "=" in x else (x, None) for x in e)
    return e


def health_test(svc):
    t = (svc.get("healthcheck") or {}).get("test")
    return " ".join(t) if isinstance(t, list) else str(t or "")


def depends(svc):
    d = svc.get("depends_on") or {}
    return {k: "service_started" for k in d} if isinstance(d, list) else {
        k: (v or {}).get("condition", "service_started") for k, v in d.items()}


replicas = {n: s for n, s in services.items() if is_custos(s) and command_of(s) in ([], ["serve"])}
replica_count = sum(int(((s.get("deploy") or {}).get("replicas")) or 1) for s in replicas.values())
check(replica_count >= 2, f"compose: {replica_count} Custos replicas ({', '.join(replicas) or 'none'})")
pg = [n for n, s in services.items() if image_of(s).startswith("postgres:16")]
rd = [n for n, s in services.items() if image_of(s).startswith("redis:7")]
lb = [n for n, s in services.items()
      if re.match(r"(docker\.io/)?(library/)?(nginx|caddy|haproxy|traefik)(:|$)", image_of(s))]
check(len(pg) == 1, f"compose: a postgres:16 service ({', '.join(pg) or 'none'})")
check(len(rd) == 1, f"compose: a redis:7 service ({', '.join(rd) or 'none'})")
check(len(lb) == 1, f"compose: a load balancer ({', '.join(lb) or 'none'})")

keks = set()
for name, s in services.items():
    check_env_names(env_of(s).keys(), f"compose service {name}")
    if name in replicas:
        env = env_of(s)
        keks.add(env.get("CUSTOS_KEK"))
        check(str(env.get("CUSTOS_DATABASE_URL", "")).startswith("postgres://"),
              f"compose {name}: CUSTOS_DATABASE_URL is postgres://")
        check(str(env.get("CUSTOS_REDIS_URL", "")).startswith("redis://"),
              f"compose {name}: CUSTOS_REDIS_URL is redis://")
        check(env.get("CUSTOS_ISSUER") == "http://localhost:8080",
              f"compose {name}: CUSTOS_ISSUER is http://localhost:8080")
        check(env.get("CUSTOS_LISTEN") == "0.0.0.0:8080", f"compose {name}: CUSTOS_LISTEN is 0.0.0.0:8080")
        check(bool(env.get("CUSTOS_KEK")), f"compose {name}: CUSTOS_KEK is set")
        check("/health/ready" in health_test(s), f"compose {name}: healthcheck calls /health/ready")
        check("ports" not in s, f"compose {name}: not published on the host (only the load balancer is)")
        d = depends(s)
        for dep in pg + rd:
            check(d.get(dep) == "service_healthy", f"compose {name}: depends_on {dep} (service_healthy)")
check(len(keks) == 1 and None not in keks, "compose: every replica gets the same CUSTOS_KEK")
check(len({image_of(s) for s in replicas.values()}) == 1, "compose: every replica runs the same image")
for name in pg + rd:
    check(bool(health_test(services[name])), f"compose {name}: has a healthcheck")
for name in lb:
    s = services[name]
    check(any(str(p).split(":")[-2:][0] == "8080" or str(p).startswith("8080:") for p in s.get("ports") or []),
          f"compose {name}: publishes port 8080")
    check(bool(health_test(s)), f"compose {name}: has a healthcheck")
    d = depends(s)
    for r in replicas:
        check(d.get(r) == "service_healthy", f"compose {name}: depends_on {r} (service_healthy)")
    vols = [str(v) for v in s.get("volumes") or []]
    check(any(v.startswith("./nginx.conf:") for v in vols), f"compose {name}: mounts ./nginx.conf")
for name, s in services.items():
    if is_custos(s) and name not in replicas:
        ok(f"compose {name}: one-shot `{' '.join(command_of(s))}` (not counted as a replica)")

# Variables the compose file interpolates must be defined in compose.env.example.
compose_text = read(compose_path)
interp = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
env_example = {}
for line in read(os.path.join(DEPLOY, "compose.env.example")).splitlines():
    if line.strip() and not line.lstrip().startswith("#") and "=" in line:
        k, v = line.split("=", 1)
        env_example[k.strip()] = v.strip()
missing = sorted(interp - env_example.keys())
check(not missing, "compose.env.example defines every ${VAR} compose.yaml uses"
      + (f" (missing: {', '.join(missing)})" if missing else ""))
check_env_names(env_example.keys(), "compose.env.example")

# ---- nginx.conf ---------------------------------------------------------------------------------
nginx = re.sub(r"#[^\n]*", "", read(os.path.join(DEPLOY, "nginx.conf")))
nginx_noquote = re.sub(r'"[^"]*"|\'[^\']*\'', '""', nginx)
depth, balanced = 0, True
for ch in nginx_noquote:
    depth += {"{": 1, "}": -1}.get(ch, 0)
    balanced &= depth >= 0
check(balanced and depth == 0, "nginx.conf: braces balance")
# Continuation lines of a multi-line directive (log_format's quoted parts) end without `;`.
stray = [ln.strip() for ln in nginx_noquote.splitlines()
         if ln.strip() and not re.search(r"[;{}]\s*$", ln.strip())
         and not ln.strip().startswith(("log_format", '""'))]
check(not stray, "nginx.conf: every directive ends with ; or a block" + (f" (check: {stray[:3]})" if stray else ""))
up = re.search(r"upstream\s+(\S+)\s*\{(.*?)\}", nginx, re.S)
if check(bool(up), "nginx.conf: has an upstream block"):
    servers = re.findall(r"^\s*server\s+([^\s;]+)", up.group(2), re.M)
    for r in replicas:
        check(f"{r}:8080" in servers, f"nginx.conf: upstream lists {r}:8080")
    check(not re.search(r"^\s*(ip_hash|hash|least_conn|random)\b", up.group(2), re.M),
          "nginx.conf: upstream balances round robin")
    check(f"proxy_pass http://{up.group(1)};" in nginx, f"nginx.conf: proxies to upstream {up.group(1)}")
check(re.search(r"listen\s+8080\s*;", nginx) is not None, "nginx.conf: listens on 8080")

# ---- Kubernetes ---------------------------------------------------------------------------------
k8s_dir = os.path.join(DEPLOY, "k8s")
kust_path = os.path.join(k8s_dir, "kustomization.yaml")
kust = (yaml_docs.get(kust_path) or [{}])[0]
resources = kust.get("resources") or []
objs = []
for r in resources:
    p = os.path.join(k8s_dir, r)
    if check(os.path.isfile(p), f"kustomization.yaml: resource {r} exists"):
        objs += yaml_docs.get(p, [])
listed = {os.path.basename(p) for p in yaml_docs if os.path.dirname(p) == k8s_dir} - {"kustomization.yaml"}
unlisted = sorted(listed - set(resources))
check(not unlisted, "kustomization.yaml lists every manifest in k8s/" + (f" (not listed: {unlisted})" if unlisted else ""))

rendered = None
if shutil.which("kubectl"):
    res = subprocess.run(["kubectl", "kustomize", k8s_dir], capture_output=True, text=True)
    if check(res.returncode == 0, "kubectl kustomize deploy/k8s renders" + (f": {res.stderr.strip()}" if res.returncode else "")):
        rendered = [d for d in yaml.safe_load_all(res.stdout) if d]
        with open(os.path.join(TMP, "k8s.yaml"), "w", encoding="utf-8") as f:
            f.write(res.stdout)
        check(len(rendered) == len(objs), f"kubectl kustomize renders {len(rendered)} objects")
else:
    print("skipped: kubectl kustomize (kubectl not installed)")
    with open(os.path.join(TMP, "k8s.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump_all(objs, f)

by_kind = {}
for o in objs:
    by_kind.setdefault(o.get("kind"), []).append(o)
    check(bool(o.get("apiVersion")) and bool((o.get("metadata") or {}).get("name")),
          f"k8s {o.get('kind')}: has apiVersion and metadata.name")
    check("namespace" not in (o.get("metadata") or {}), f"k8s {o.get('kind')}/{o['metadata'].get('name')}: no namespace")
for kind in ("Deployment", "Service", "Secret", "ConfigMap", "PodDisruptionBudget"):
    check(len(by_kind.get(kind, [])) == 1, f"k8s: one {kind}")


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


dep = (by_kind.get("Deployment") or [{}])[0]
spec = dep.get("spec") or {}
pod = (spec.get("template") or {}).get("spec") or {}
pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
containers = pod.get("containers") or []
c = containers[0] if containers else {}
check(int(spec.get("replicas") or 1) >= 2, f"Deployment: replicas = {spec.get('replicas')} (>= 2)")
check(matches((spec.get("selector") or {}).get("matchLabels"), pod_labels), "Deployment: selector matches pod labels")
ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
check(str(ru.get("maxUnavailable")) == "0", "Deployment: rolling update with maxUnavailable 0")
check(((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path") == "/health/ready",
      "Deployment: readinessProbe GET /health/ready")
check(((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path") == "/health/live",
      "Deployment: livenessProbe GET /health/live")
res_ = c.get("resources") or {}
check(bool(res_.get("requests")) and bool(res_.get("limits")), "Deployment: resources requests and limits")
psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "Deployment: runAsNonRoot")
check(int(csc.get("runAsUser", psc.get("runAsUser", 0)) or 0) > 0, "Deployment: numeric non-root runAsUser")
check(csc.get("readOnlyRootFilesystem") is True, "Deployment: readOnlyRootFilesystem")
check(csc.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation false")
check(pod.get("enableServiceLinks") is False, "Deployment: enableServiceLinks false (no injected CUSTOS_* vars)")
ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
check(8080 in ports.values(), "Deployment: container port 8080")
check_env_names([e.get("name", "") for e in c.get("env") or []], "Deployment env")
cm = (by_kind.get("ConfigMap") or [{}])[0]
sec = (by_kind.get("Secret") or [{}])[0]
refs_cm = [e["configMapRef"]["name"] for e in c.get("envFrom") or [] if "configMapRef" in e]
refs_sec = [e["secretRef"]["name"] for e in c.get("envFrom") or [] if "secretRef" in e]
check(cm.get("metadata", {}).get("name") in refs_cm, "Deployment: envFrom the ConfigMap")
check(sec.get("metadata", {}).get("name") in refs_sec, "Deployment: envFrom the Secret")

cm_data = cm.get("data") or {}
check_env_names(cm_data.keys(), "ConfigMap")
check(all(isinstance(v, str) for v in cm_data.values()), "ConfigMap: every value is a string")
check(cm_data.get("CUSTOS_LISTEN") == "0.0.0.0:8080", "ConfigMap: CUSTOS_LISTEN is 0.0.0.0:8080")
check(str(cm_data.get("CUSTOS_ISSUER", "")).startswith("https://"), "ConfigMap: CUSTOS_ISSUER is https://")
secret_keys = {**(sec.get("data") or {}), **(sec.get("stringData") or {})}
check_env_names(secret_keys.keys(), "Secret")
for k in ("CUSTOS_KEK", "CUSTOS_DATABASE_URL", "CUSTOS_REDIS_URL"):
    check(k in secret_keys, f"Secret: has {k}")
    check(k not in cm_data, f"ConfigMap: does not carry the secret {k}")
check(not set(secret_keys) & set(cm_data), "ConfigMap and Secret set no key twice")
kek = str((sec.get("stringData") or {}).get("CUSTOS_KEK", ""))
try:
    kek_is_real = len(base64.b64decode(kek, validate=True)) == 32
except (binascii.Error, ValueError):
    kek_is_real = False
check(not kek_is_real and "REPLACE" in kek.upper(), "Secret: CUSTOS_KEK is an obvious placeholder, not a usable key")
check("openssl rand -base64 32" in read(os.path.join(k8s_dir, "secret.yaml")), "Secret: says how to generate the KEK")
check(str((sec.get("stringData") or {}).get("CUSTOS_DATABASE_URL", "")).startswith("postgres://"),
      "Secret: CUSTOS_DATABASE_URL is postgres://")
check(re.match(r"rediss?://", str((sec.get("stringData") or {}).get("CUSTOS_REDIS_URL", ""))) is not None,
      "Secret: CUSTOS_REDIS_URL is redis:// or rediss://")

svc = (by_kind.get("Service") or [{}])[0]
check(matches((svc.get("spec") or {}).get("selector"), pod_labels), "Service: selector matches the pods")
for p in (svc.get("spec") or {}).get("ports") or []:
    t = p.get("targetPort")
    check(t in ports or t in ports.values(), f"Service: targetPort {t} is a container port")
pdb = (by_kind.get("PodDisruptionBudget") or [{}])[0]
check((pdb.get("spec") or {}).get("minAvailable") == 1, "PodDisruptionBudget: minAvailable 1")
check(matches(((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels"), pod_labels),
      "PodDisruptionBudget: selector matches the pods")
if rendered is not None:
    rdep = [o for o in rendered if o.get("kind") == "Deployment"][0]
    img = rdep["spec"]["template"]["spec"]["containers"][0]["image"]
    check(bool(img), f"kustomize: Deployment image is {img}")

# ---- custos.toml.example ------------------------------------------------------------------------
toml_path = os.path.join(DEPLOY, "custos.toml.example")
toml_text = read(toml_path)
try:
    import tomllib
except ModuleNotFoundError:
    tomllib = None
if tomllib is None:
    print("skipped: parsing custos.toml.example (python < 3.11 has no tomllib)")
else:
    try:
        tv = tomllib.loads(toml_text)
        ok("custos.toml.example parses")
        unknown = sorted(set(tv) - set(KEYS))
        check(not unknown, "custos.toml.example: every key is in src/config.rs" + (f" (unknown: {unknown})" if unknown else ""))
        for k in KEYS:
            commented = re.search(rf"^#\s*{re.escape(k)}\s*=", toml_text, re.M) is not None
            if not check(k in tv or commented, f"custos.toml.example: lists `{k}`"):
                continue
            if k in DEFAULTS:
                want = DEFAULTS[k]
                if want is None:
                    check(k not in tv, f"custos.toml.example: `{k}` (default unset) is commented out")
                else:
                    check(tv.get(k) == want, f"custos.toml.example: `{k}` = {want!r} (the default)"
                          + ("" if tv.get(k) == want else f", file has {tv.get(k)!r}"))
            # A comment line right above every key.
            km = re.search(rf"^(#\s*)?{re.escape(k)}\s*=", toml_text, re.M)
            before = toml_text[: km.start()].rstrip("\n").splitlines()
            check(bool(before) and before[-1].startswith("#"), f"custos.toml.example: `{k}` has a comment")
    except tomllib.TOMLDecodeError as e:
        fail(f"custos.toml.example is not valid TOML: {e}")

# ---- systemd unit + env file --------------------------------------------------------------------
unit = {}
section = None
for line in read(os.path.join(DEPLOY, "custos.service")).splitlines():
    line = line.strip()
    if not line or line.startswith(("#", ";")):
        continue
    if line.startswith("["):
        section = line.strip("[]")
        continue
    k, _, v = line.partition("=")
    unit.setdefault((section, k.strip()), []).append(v.strip())


def u(key, section="Service"):
    return (unit.get((section, key)) or [""])[-1]


check(u("User") not in ("", "root"), f"custos.service: dedicated user ({u('User')})")
check(u("EnvironmentFile") == "/etc/custos/custos.env", "custos.service: EnvironmentFile=/etc/custos/custos.env")
check(re.search(r"/custos( serve)?$", u("ExecStart")) is not None, "custos.service: ExecStart runs custos serve")
for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                  ("ProtectHome", "yes"), ("PrivateDevices", "yes")):
    check(u(key) == want, f"custos.service: {key}={want}")
rw = " ".join(unit.get(("Service", "ReadWritePaths"), []))
check("data" in rw and "keys" in rw, "custos.service: ReadWritePaths covers the data and keys dirs")
check(u("WantedBy", "Install") == "multi-user.target", "custos.service: WantedBy=multi-user.target")

env_file = {}
for line in read(os.path.join(DEPLOY, "custos.env.example")).splitlines():
    s = line.strip().lstrip("#").strip()
    if re.match(r"^CUSTOS_[A-Z0-9_]+=", s):
        k, v = s.split("=", 1)
        env_file[k] = v
        if not line.strip().startswith("#"):
            check(not v.startswith(("'", '"')) and " " not in v, f"custos.env.example: {k} is a plain value")
check_env_names(env_file.keys(), "custos.env.example")
for k in ("CUSTOS_ISSUER", "CUSTOS_DATABASE_URL", "CUSTOS_KEK", "CUSTOS_KEYS_DIR"):
    check(k in env_file, f"custos.env.example: mentions {k}")
kd = env_file.get("CUSTOS_KEYS_DIR", "")
check(kd and kd in rw, "custos.env.example: CUSTOS_KEYS_DIR is one of the unit's ReadWritePaths")
dbp = re.match(r"sqlite://(/[^?]*)", env_file.get("CUSTOS_DATABASE_URL", ""))
check(dbp is None or os.path.dirname(dbp.group(1)) in rw, "custos.env.example: the SQLite file is under ReadWritePaths")

# ---- Dockerfile ---------------------------------------------------------------------------------
df = read(os.path.join(DEPLOY, "Dockerfile"))
froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", df, re.M | re.I)
check(len(froms) >= 2, f"Dockerfile: multi-stage ({len(froms)} stages)")
check(any("rust" in f[0] for f in froms), "Dockerfile: builds in a rust image")
check(re.search(r"cargo build --release[^\n]*--locked", df) is not None, "Dockerfile: cargo build --release --locked")
users = re.findall(r"^USER\s+(\S+)", df, re.M)
check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile: runs as non-root ({users[-1] if users else 'no USER'})")
check(re.search(r"^EXPOSE\s+8080\b", df, re.M) is not None, "Dockerfile: EXPOSE 8080")
check(re.search(r"^ENV\s+.*CUSTOS_LISTEN=0\.0\.0\.0:8080", df, re.M) is not None, "Dockerfile: CUSTOS_LISTEN=0.0.0.0:8080")
check_env_names(re.findall(r"\b(CUSTOS_[A-Z0-9_]+)=", df), "Dockerfile")
hc_text = re.search(r"^HEALTHCHECK(?:.*\\\n)*.*$", df, re.M)
check(hc_text is not None and "/health/ready" in hc_text.group(0), "Dockerfile: HEALTHCHECK calls /health/ready")
if hc_text:
    tool = "curl" if "curl" in hc_text.group(0) else "wget" if "wget" in hc_text.group(0) else None
    runtime = df[df.rfind("\nFROM "):]
    check(tool is not None and (re.search(rf"install[^\n]*\b{tool}\b", runtime) is not None or "busybox" in runtime),
          f"Dockerfile: the runtime stage installs the healthcheck's {tool}")
ign = [ln.strip() for ln in read(os.path.join(DEPLOY, "Dockerfile.dockerignore")).splitlines()]
for p in ("target/", "data/", "keys/"):
    check(p in ign or p.rstrip("/") in ign, f"Dockerfile.dockerignore: excludes {p}")
for p in ("templates", "src", "migrations", "Cargo.toml", "Cargo.lock"):
    check(not any(x.rstrip("/") in (p, "/" + p, "*", "**") for x in ign), f"Dockerfile.dockerignore: keeps {p}")

print(f"python checks: {failures} failure(s)")
sys.exit(1 if failures else 0)
PY
    ok "static checks"
else
    fail "static checks (see FAIL lines above)"
fi

# --- external tools, when installed ----------------------------------------------------------------
K8S_RENDERED="$TMP/k8s.yaml"

if command -v kubeconform >/dev/null 2>&1; then
    if kubeconform -strict -summary "$K8S_RENDERED"; then ok "kubeconform"; else fail "kubeconform"; fi
else
    skip "kubeconform not installed"
fi

if command -v kubernetes-validate >/dev/null 2>&1; then
    if kubernetes-validate --strict --quiet "$K8S_RENDERED"; then ok "kubernetes-validate (strict)"; else fail "kubernetes-validate"; fi
else
    skip "kubernetes-validate not installed (pip install kubernetes-validate)"
fi

if docker compose version >/dev/null 2>&1; then
    if docker compose -f "$DEPLOY/compose.yaml" --env-file "$DEPLOY/compose.env.example" config -q; then
        ok "docker compose config"
    else
        fail "docker compose config"
    fi
else
    skip "docker compose unavailable"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify insists that ExecStart= is executable: point it at a stub when custos is not installed.
    mkdir -p "$TMP/unit"
    exe=/usr/local/bin/custos
    if [[ ! -x $exe ]]; then
        printf '#!/bin/sh\nexit 0\n' >"$TMP/custos" && chmod +x "$TMP/custos"
        exe="$TMP/custos"
    fi
    sed "s#^ExecStart=/usr/local/bin/custos#ExecStart=$exe#" "$DEPLOY/custos.service" >"$TMP/unit/custos.service"
    if out="$(systemd-analyze verify "$TMP/unit/custos.service" 2>&1)" && [[ -z $out ]]; then
        ok "systemd-analyze verify custos.service"
    else
        echo "$out" >&2
        fail "systemd-analyze verify custos.service"
    fi
else
    skip "systemd-analyze unavailable"
fi

if command -v nginx >/dev/null 2>&1; then
    v="$(nginx -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')"
    if [[ "$(printf '%s\n1.27.3\n' "$v" | sort -V | head -1)" == "1.27.3" ]]; then
        if nginx -t -q -c "$DEPLOY/nginx.conf" -p "$TMP" -g "pid $TMP/nginx.pid; error_log stderr;"; then
            ok "nginx -t"
        else
            fail "nginx -t"
        fi
    else
        skip "nginx -t (nginx $v < 1.27.3 lacks upstream 'resolve'; the compose file uses nginx:1.28)"
    fi
else
    skip "nginx -t (nginx not installed)"
fi

if command -v hadolint >/dev/null 2>&1; then
    if hadolint "$DEPLOY/Dockerfile"; then ok "hadolint"; else fail "hadolint"; fi
else
    skip "hadolint not installed"
fi

if bash -n "${BASH_SOURCE[0]}"; then ok "bash -n validate.sh"; else fail "bash -n validate.sh"; fi
if command -v shellcheck >/dev/null 2>&1; then
    if shellcheck "${BASH_SOURCE[0]}"; then ok "shellcheck validate.sh"; else fail "shellcheck validate.sh"; fi
else
    skip "shellcheck not installed"
fi

# --- against a built binary (opt-in) ---------------------------------------------------------------
if [[ -n ${CUSTOS_BIN:-} ]]; then
    bin="$(cd "$ROOT" && realpath "$CUSTOS_BIN" 2>/dev/null)"
    if [[ -z $bin || ! -x $bin ]]; then
        fail "CUSTOS_BIN=$CUSTOS_BIN is not an executable"
    else
        run() { (cd "$TMP" && env -i PATH="$PATH" "$@"); }
        defaults="$(run "$bin" config check 2>/dev/null)"
        if [[ -n $defaults ]] && [[ "$(run "$bin" --config "$DEPLOY/custos.toml.example" config check 2>/dev/null)" == "$defaults" ]]; then
            ok "custos config check: custos.toml.example equals the built-in defaults"
        else
            fail "custos config check: custos.toml.example differs from the built-in defaults"
        fi
        # The env example (with a real KEK) must validate, and the environment must reach the config.
        kek="$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')"
        mapfile -t envs < <(grep -E '^CUSTOS_[A-Z0-9_]+=' "$DEPLOY/custos.env.example")
        if out="$(run "${envs[@]}" CUSTOS_KEK="$kek" CUSTOS_LISTEN=0.0.0.0:18080 "$bin" config check 2>&1)"; then
            ok "custos config check accepts custos.env.example"
            if grep -q '^listen = "0.0.0.0:18080"' <<<"$out"; then
                ok "custos config check: CUSTOS_* environment variables override the defaults"
            else
                fail "custos config check ignores CUSTOS_LISTEN: the CUSTOS_* environment does not reach the config (every deployment here configures Custos through it)"
            fi
        else
            echo "$out" >&2
            fail "custos config check rejects custos.env.example"
        fi
    fi
else
    skip "checks against a built binary (set CUSTOS_BIN=target/release/custos)"
fi

echo
if ((failures)); then
    echo "validate.sh: $failures failure(s)" >&2
    exit 1
fi
echo "validate.sh: all checks passed"
