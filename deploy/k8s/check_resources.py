#!/usr/bin/env python3
"""Checks rendered rbee manifests beyond what kubernetes-validate can see.

kubernetes-validate has schemas for built-in kinds only. This checks the custom resources
(InferencePool, HTTPRoute, the endpoint-picker config, ScaledObject, InferenceService,
PodMonitor) against the required fields and enums of their published CRDs and docs, and checks
that all resources of an overlay agree with each other and with how rbee-host works (probe
paths, $PORT, drain timings, the API key, the gauges the picker reads).

    check_resources.py OVERLAY RENDERED.yaml [BASE_DEPLOYMENT.yaml]

Exits 1 and prints every problem found.
"""

import re
import sys

import yaml

GAUGES = {
    "queuedRequestsSpec": "rbee_num_requests_waiting",
    "runningRequestsSpec": "rbee_num_requests_running",
    "kvUsageSpec": "rbee_kv_cache_usage_ratio",
}
ENGINE_LABEL = "llm-d.ai/engine-type"
EPP_API_VERSIONS = {"llm-d.ai/v1alpha1", "inference.networking.x-k8s.io/v1alpha1"}
# The fields each custom resource's spec may have (from the CRDs), to catch misspelt keys.
SPEC_FIELDS = {
    "InferencePool": {"selector", "targetPorts", "appProtocol", "endpointPickerRef"},
    "ScaledObject": {
        "scaleTargetRef", "pollingInterval", "initialCooldownPeriod", "cooldownPeriod", "idleReplicaCount",
        "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
    },
    "PodMonitor": {
        "jobLabel", "podTargetLabels", "podMetricsEndpoints", "selector", "selectorMechanism", "namespaceSelector",
        "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
        "keepDroppedTargets", "attachMetadata", "scrapeClass", "scrapeProtocols", "fallbackScrapeProtocol",
        "bodySizeLimit", "scrapeClassicHistograms", "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor",
        "convertClassicHistogramsToNHCB", "scrapeNativeHistograms",
    },
    "HTTPRoute": {"parentRefs", "hostnames", "rules", "useDefaultBackendRefs"},
    "InferenceService": {"predictor", "transformer", "explainer"},
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

problems = []


def fail(where, message):
    problems.append(f"{where}: {message}")


def get(obj, path, default=None):
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def require(where, obj, path, kind=None):
    value = get(obj, path)
    if value is None:
        fail(where, f"{path} is required")
    elif kind is not None and not isinstance(value, kind):
        fail(where, f"{path} must be a {kind.__name__ if isinstance(kind, type) else kind}")
    return value


def flag(args, name):
    """The value after `name` in an args list, or None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def env_map(container):
    return {e.get("name"): e for e in container.get("env") or []}


def check_server_container(where, pod, container, grace_required=True):
    """What every rbee-host container must do, in a Deployment or an InferenceService."""
    args = [str(a) for a in container.get("args") or []]
    env = env_map(container)
    if flag(args, "--host") != "0.0.0.0":
        fail(where, "rbee-host must listen on --host 0.0.0.0 to be reachable in the pod network")
    if "--port" in args or any(a.startswith("--port=") for a in args):
        fail(where, "the port must come from $PORT, not --port")
    if "--api-key" in args or any(a.startswith("--api-key=") for a in args):
        fail(where, "the API key must not be in args (use RBEE_API_KEY from a Secret)")
    if not flag(args, "--plugin"):
        fail(where, "--plugin is required")
    if "--insecure-no-auth" in args:
        fail(where, "--insecure-no-auth must not be used")
    key = env.get("RBEE_API_KEY")
    if not key or not get(key, "valueFrom.secretKeyRef.name") or not get(key, "valueFrom.secretKeyRef.key"):
        fail(where, "RBEE_API_KEY must come from a Secret (valueFrom.secretKeyRef)")
    ports = container.get("ports") or []
    if not ports:
        fail(where, "the container must declare its port")
        return
    port = ports[0]
    port_env = env.get("PORT")
    if port_env is not None and str(port_env.get("value")) != str(port.get("containerPort")):
        fail(where, f"$PORT {port_env.get('value')} differs from containerPort {port.get('containerPort')}")
    if port_env is None and port.get("containerPort") != 8080:
        fail(where, "without $PORT rbee-host listens on 8080, the containerPort must be 8080")
    names = {p.get("name") for p in ports} | {p.get("containerPort") for p in ports}
    for probe, path in (("startupProbe", "/ready"), ("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        got = get(container, f"{probe}.httpGet.path")
        if got != path:
            fail(where, f"{probe} must GET {path} (got {got})")
        probe_port = get(container, f"{probe}.httpGet.port")
        if probe_port is not None and probe_port not in names:
            fail(where, f"{probe} port {probe_port} is not a container port")
    startup = container.get("startupProbe") or {}
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    if budget < 120:
        fail(where, f"the startupProbe allows {budget} s for loading the model; give it at least 120 s")
    pre_stop = get(container, "lifecycle.preStop.sleep.seconds")
    if pre_stop is None:
        fail(where, "a preStop sleep is required (to leave the endpoints before draining)")
        pre_stop = 0
    drain = int(flag(args, "--shutdown-timeout") or 30)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace_required and grace < pre_stop + drain + 15:
        fail(where, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + --shutdown-timeout {drain} + 15")
    cache = env.get("RBEE_CACHE_DIR", {}).get("value")
    mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    if not cache or cache not in mounts:
        fail(where, "RBEE_CACHE_DIR must be set to a mounted model cache volume")
    shm = volumes.get(mounts.get("/dev/shm"))
    if not shm or get(shm, "emptyDir.medium") != "Memory":
        fail(where, "/dev/shm must be an emptyDir with medium: Memory")
    for name in mounts.values():
        if name not in volumes:
            fail(where, f"volumeMount {name} has no volume")
    plugin = flag(args, "--plugin") or ""
    gpus = get(container, "resources.limits", {}).get("nvidia.com/gpu")
    if plugin.endswith("-cuda") and not gpus:
        fail(where, f"{plugin} needs nvidia.com/gpu in resources.limits")
    if not plugin.endswith("-cuda") and gpus:
        fail(where, f"{plugin} asks for a GPU it cannot use")
    if plugin.endswith("-cuda") and not (flag(args, "--device") or "").startswith("cuda"):
        fail(where, f"{plugin} should be given --device cuda:N")
    return args


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    overlay, rendered = sys.argv[1], sys.argv[2]
    base_file = sys.argv[3] if len(sys.argv) > 3 else None
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for doc in docs:
        where = f"{overlay}: {doc.get('kind')}/{get(doc, 'metadata.name')}"
        for field in ("apiVersion", "kind", "metadata.name"):
            require(where, doc, field, str)
        name = get(doc, "metadata.name", "")
        if not DNS_LABEL.match(name):
            fail(where, "metadata.name must be a DNS label")
        by_kind.setdefault(doc.get("kind"), []).append(doc)
        allowed = SPEC_FIELDS.get(doc.get("kind"))
        if allowed is not None:
            for key in set(doc.get("spec") or {}) - allowed:
                fail(where, f"spec.{key} is not a field of {doc.get('kind')}")

    deployments = {get(d, "metadata.name"): d for d in by_kind.get("Deployment", [])}
    services = {get(s, "metadata.name"): s for s in by_kind.get("Service", [])}
    rbee = deployments.get("rbee")
    pod_labels, container = {}, None
    if rbee is not None:
        where = f"{overlay}: Deployment/rbee"
        pod = get(rbee, "spec.template.spec", {})
        pod_labels = get(rbee, "spec.template.metadata.labels", {})
        if pod_labels.get(ENGINE_LABEL) != "rbee":
            fail(where, f"pod label {ENGINE_LABEL}: rbee is required (the picker maps metrics by it)")
        if not selects(get(rbee, "spec.selector.matchLabels"), pod_labels):
            fail(where, "spec.selector does not select the pod template")
        container = next((c for c in pod.get("containers", []) if c.get("name") == "rbee-host"), None)
        if container is None:
            fail(where, "no container named rbee-host")
        else:
            check_server_container(where, pod, container)

    for svc in services.values():
        where = f"{overlay}: Service/{get(svc, 'metadata.name')}"
        selector = get(svc, "spec.selector", {})
        target = next((d for d in deployments.values() if selects(selector, get(d, "spec.template.metadata.labels", {}))), None)
        if target is None:
            fail(where, "selects no Deployment's pods")
            continue
        names = set()
        for c in get(target, "spec.template.spec.containers", []):
            for p in c.get("ports") or []:
                names |= {p.get("name"), p.get("containerPort")}
        for p in get(svc, "spec.ports", []):
            if p.get("targetPort", p.get("port")) not in names:
                fail(where, f"targetPort {p.get('targetPort')} is no container port")

    for pm in by_kind.get("PodMonitor", []):
        where = f"{overlay}: PodMonitor/{get(pm, 'metadata.name')}"
        if pm.get("apiVersion") != "monitoring.coreos.com/v1":
            fail(where, "apiVersion must be monitoring.coreos.com/v1")
        selector = require(where, pm, "spec.selector.matchLabels", dict)
        if rbee is not None and selector and not selects(selector, pod_labels):
            fail(where, "spec.selector does not select the rbee pods")
        endpoints = require(where, pm, "spec.podMetricsEndpoints", list) or []
        if not endpoints:
            fail(where, "spec.podMetricsEndpoints must not be empty")
        port_names = {p.get("name") for p in (container or {}).get("ports") or []}
        for ep in endpoints:
            if ep.get("port") not in port_names:
                fail(where, f"podMetricsEndpoints port {ep.get('port')} is not the API port")
            if ep.get("path", "/metrics") != "/metrics":
                fail(where, "rbee-host serves /metrics")

    pools = {get(p, "metadata.name"): p for p in by_kind.get("InferencePool", [])}
    for pool in pools.values():
        where = f"{overlay}: InferencePool/{get(pool, 'metadata.name')}"
        if pool.get("apiVersion") != "inference.networking.k8s.io/v1":
            fail(where, "apiVersion must be inference.networking.k8s.io/v1")
        selector = require(where, pool, "spec.selector.matchLabels", dict) or {}
        if not 1 <= len(selector) <= 64:
            fail(where, "spec.selector.matchLabels needs 1 to 64 entries")
        if not selects(selector, pod_labels):
            fail(where, "spec.selector does not select the rbee pods")
        ports = require(where, pool, "spec.targetPorts", list) or []
        numbers = [p.get("number") for p in ports]
        if not 1 <= len(ports) <= 8 or len(set(numbers)) != len(numbers):
            fail(where, "spec.targetPorts needs 1 to 8 unique ports")
        for n in numbers:
            if not isinstance(n, int) or not 1 <= n <= 65535:
                fail(where, f"targetPorts number {n} is not a port")
        if container and numbers != [p.get("containerPort") for p in container.get("ports", [])][:1]:
            fail(where, f"targetPorts {numbers} are not rbee-host's port")
        if get(pool, "spec.appProtocol", "http") not in ("http", "kubernetes.io/h2c"):
            fail(where, "spec.appProtocol must be http or kubernetes.io/h2c")
        ref = get(pool, "spec.endpointPickerRef")
        if ref is not None:
            require(where, ref, "name", str)
            if ref.get("kind", "Service") == "Service":
                port = require(where, ref, "port.number", int)
                svc = services.get(ref.get("name"))
                if svc is None:
                    fail(where, f"endpointPickerRef names Service {ref.get('name')}, which is not rendered")
                elif port not in [p.get("port") for p in get(svc, "spec.ports", [])]:
                    fail(where, f"endpointPickerRef port {port} is not a port of Service {ref.get('name')}")
            if ref.get("failureMode", "FailClose") not in ("FailOpen", "FailClose"):
                fail(where, "endpointPickerRef.failureMode must be FailOpen or FailClose")

    for route in by_kind.get("HTTPRoute", []):
        where = f"{overlay}: HTTPRoute/{get(route, 'metadata.name')}"
        if route.get("apiVersion") != "gateway.networking.k8s.io/v1":
            fail(where, "apiVersion must be gateway.networking.k8s.io/v1")
        for parent in require(where, route, "spec.parentRefs", list) or []:
            require(where, parent, "name", str)
        for rule in get(route, "spec.rules", []):
            for backend in rule.get("backendRefs") or []:
                require(where, backend, "name", str)
                if backend.get("kind") == "InferencePool":
                    if backend.get("group") != "inference.networking.k8s.io":
                        fail(where, "an InferencePool backendRef needs group inference.networking.k8s.io")
                    if backend.get("name") not in pools:
                        fail(where, f"backendRef InferencePool {backend.get('name')} is not rendered")

    for cm in by_kind.get("ConfigMap", []):
        for key, text in (cm.get("data") or {}).items():
            if "EndpointPickerConfig" in text:
                check_epp_config(f"{overlay}: ConfigMap/{get(cm, 'metadata.name')}[{key}]", yaml.safe_load(text), pod_labels)
                check_epp_deployment(overlay, deployments, cm, key)

    for so in by_kind.get("ScaledObject", []):
        where = f"{overlay}: ScaledObject/{get(so, 'metadata.name')}"
        if so.get("apiVersion") != "keda.sh/v1alpha1":
            fail(where, "apiVersion must be keda.sh/v1alpha1")
        target = require(where, so, "spec.scaleTargetRef.name", str)
        if get(so, "spec.scaleTargetRef.kind", "Deployment") == "Deployment":
            if target not in deployments:
                fail(where, f"scaleTargetRef names Deployment {target}, which is not rendered")
            elif "replicas" in deployments[target]["spec"]:
                fail(where, f"Deployment {target} must not fix spec.replicas (the HPA owns it)")
        low, high = get(so, "spec.minReplicaCount", 0), get(so, "spec.maxReplicaCount", 100)
        if not 0 <= low <= high:
            fail(where, "minReplicaCount must be <= maxReplicaCount")
        triggers = require(where, so, "spec.triggers", list) or []
        if not triggers:
            fail(where, "spec.triggers must not be empty")
        for trigger in triggers:
            require(where, trigger, "type", str)
            if trigger.get("type") == "prometheus":
                meta = require(where, trigger, "metadata", dict) or {}
                for field in ("serverAddress", "query", "threshold"):
                    if not isinstance(meta.get(field), str) or not meta.get(field):
                        fail(where, f"prometheus trigger metadata.{field} is required (a string)")
                if "rbee_num_requests_waiting" not in meta.get("query", ""):
                    fail(where, "the query must read the queue depth, rbee_num_requests_waiting")
                try:
                    float(meta.get("threshold", "x"))
                except ValueError:
                    fail(where, "threshold must be a number in a string")
            if trigger.get("metricType", "AverageValue") not in ("AverageValue", "Value", "Utilization"):
                fail(where, "metricType must be AverageValue, Value or Utilization")

    for isvc in by_kind.get("InferenceService", []):
        where = f"{overlay}: InferenceService/{get(isvc, 'metadata.name')}"
        if isvc.get("apiVersion") != "serving.kserve.io/v1beta1":
            fail(where, "apiVersion must be serving.kserve.io/v1beta1")
        predictor = require(where, isvc, "spec.predictor", dict) or {}
        containers = predictor.get("containers") or []
        if len(containers) < 1:
            fail(where, "a custom predictor needs spec.predictor.containers")
            continue
        main = containers[0]
        if main.get("name") != "kserve-container":
            fail(where, "the predictor container must be named kserve-container")
        if not main.get("image"):
            fail(where, "the predictor container needs an image")
        if get(predictor, "labels", {}).get(ENGINE_LABEL) != "rbee":
            fail(where, f"spec.predictor.labels needs {ENGINE_LABEL}: rbee")
        mode = get(isvc, "metadata.annotations", {}).get("serving.kserve.io/deploymentMode", "Serverless")
        if mode == "RawDeployment":
            args = check_server_container(where, predictor, main)
        else:
            if "PORT" in env_map(main):
                fail(where, "Knative reserves PORT; do not set it in Serverless mode")
            args = [str(a) for a in main.get("args") or []]
        if base_file and args is not None:
            with open(base_file) as f:
                base = yaml.safe_load(f)
            base_args = [str(a) for a in get(base, "spec.template.spec.containers")[0].get("args", [])]
            if args != base_args:
                fail(where, f"args differ from base/deployment.yaml:\n  {args}\n  {base_args}")

    if problems:
        print("\n".join(f"FAIL {p}" for p in problems))
        return 1
    print(f"ok   {overlay}: {len(docs)} resources ({', '.join(sorted(by_kind))})")
    return 0


def check_epp_config(where, config, pod_labels):
    if config.get("apiVersion") not in EPP_API_VERSIONS:
        fail(where, f"apiVersion must be one of {sorted(EPP_API_VERSIONS)}")
    if config.get("kind") != "EndpointPickerConfig":
        fail(where, "kind must be EndpointPickerConfig")
    plugins = config.get("plugins") or []
    refs = set()
    for plugin in plugins:
        if not plugin.get("type"):
            fail(where, "every plugin needs a type")
        refs.add(plugin.get("name") or plugin.get("type"))
    for profile in config.get("schedulingProfiles") or []:
        if not profile.get("name"):
            fail(where, "every scheduling profile needs a name")
        for entry in profile.get("plugins") or []:
            if entry.get("pluginRef") not in refs:
                fail(where, f"profile {profile.get('name')} refers to undefined plugin {entry.get('pluginRef')}")
    for source in get(config, "dataLayer.sources", []) or []:
        for ref in [source.get("pluginRef")] + [e.get("pluginRef") for e in source.get("extractors") or []]:
            if ref not in refs:
                fail(where, f"dataLayer refers to undefined plugin {ref}")
    extractor = next((p for p in plugins if p.get("type") == "core-metrics-extractor"), None)
    if extractor is None:
        fail(where, "no core-metrics-extractor: the picker would read vLLM's names only")
        return
    params = extractor.get("parameters") or {}
    label_key = params.get("engineLabelKey", ENGINE_LABEL)
    engine = pod_labels.get(label_key)
    if engine is None:
        fail(where, f"the rbee pods have no {label_key} label")
    configs = {c.get("name"): c for c in params.get("engineConfigs") or []}
    mapping = configs.get(engine)
    if mapping is None:
        fail(where, f"engineConfigs has no entry for engine {engine!r}")
        return
    for field, metric in GAUGES.items():
        if mapping.get(field) != metric:
            fail(where, f"engine {engine}: {field} must be {metric} (got {mapping.get(field)})")
    default = params.get("defaultEngine", "vllm")
    if default not in configs and default not in ("vllm", "sglang", "trtllm-serve", "triton-tensorrt-llm"):
        fail(where, f"defaultEngine {default} is not configured")


def check_epp_deployment(overlay, deployments, cm, key):
    name = get(cm, "metadata.name")
    for dep in deployments.values():
        pod = get(dep, "spec.template.spec", {})
        volume = next((v for v in pod.get("volumes") or [] if get(v, "configMap.name") == name), None)
        if volume is None:
            continue
        where = f"{overlay}: Deployment/{get(dep, 'metadata.name')}"
        for c in pod.get("containers", []):
            mount = next((m for m in c.get("volumeMounts") or [] if m.get("name") == volume.get("name")), None)
            if mount and flag([str(a) for a in c.get("args") or []], "--config-file") != f"{mount['mountPath']}/{key}":
                fail(where, f"--config-file must be {mount['mountPath']}/{key}")
        return
    fail(f"{overlay}: ConfigMap/{name}", "no Deployment mounts the endpoint-picker config")


if __name__ == "__main__":
    sys.exit(main())
