//! deploy/kubernetes as an operator applies it: every overlay rendered by the pinned kubectl
//! (`kubectl kustomize`; scripts/lib.sh `ensure_kubernetes_tools` installs it and exports
//! `PHOENIX_KUBECTL`, else `target/k8s-venv/bin/kubectl`) and read back, with the policies of
//! docs/deployment.md asserted on what would reach the cluster: limits and probes on every
//! container, `PHOENIX_SECRET_KEY` in auth alone, database connections within the budget, a
//! NetworkPolicy for each component and the paths it opens, pinned images, replicas. Schema
//! validation of the same output is scripts/check-kubernetes. And the bootstrap Job's two
//! commands, run twice against a real database, change nothing the second time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use phoenix::admin::ServiceClientOutcome;
use phoenix_common::domain::Domain;
use phoenix_common::jobs::Job;
use phoenix_proto::auth::v1 as pb;
use phoenix_tests::TestApp;
use phoenix_tests::auth::auth_client;
use tonic::Code;
use yaml_rust2::{Yaml, YamlLoader};

const OVERLAYS: [&str; 2] = ["dev", "production"];

fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PHOENIX_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| phoenix_tests::workspace_root().join("target/k8s-venv/bin/kubectl"));
    phoenix_tests::require_tool(
        "kubectl",
        path,
        "run `. scripts/lib.sh && ensure_kubernetes_tools` (scripts/test does)",
    )
}

/// One overlay's rendered objects.
struct Rendered {
    overlay: &'static str,
    objects: Vec<Yaml>,
}

fn render(kubectl: &PathBuf, overlay: &'static str) -> Rendered {
    let dir = phoenix_tests::workspace_root().join("deploy/kubernetes/overlays").join(overlay);
    let out = std::process::Command::new(kubectl).arg("kustomize").arg(&dir).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let objects: Vec<Yaml> =
        YamlLoader::load_from_str(&text).expect("rendered YAML parses").into_iter().filter(|d| !d.is_null()).collect();
    assert!(objects.len() > 20, "{overlay}: only {} objects", objects.len());
    Rendered { overlay, objects }
}

fn rendered() -> Option<Vec<Rendered>> {
    let kubectl = kubectl()?;
    Some(OVERLAYS.iter().map(|o| render(&kubectl, o)).collect())
}

/// The command of a container (`serve`, `gateway`, `migrate`, …).
fn command(container: &Yaml) -> &str {
    list(&container["args"]).first().map_or("", s)
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn int(y: &Yaml) -> Option<i64> {
    y.as_i64().or_else(|| y.as_str().and_then(|v| v.parse().ok()))
}

fn labels(y: &Yaml) -> BTreeMap<String, String> {
    y.as_hash().map(|h| h.iter().map(|(k, v)| (s(k).to_owned(), s(v).to_owned())).collect()).unwrap_or_default()
}

/// `selector` ⊆ `labels` (a non-empty `matchLabels` only).
fn selects(selector: &Yaml, pod_labels: &BTreeMap<String, String>) -> bool {
    let wanted = labels(&selector["matchLabels"]);
    !wanted.is_empty() && wanted.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

/// Mebibytes of a memory quantity (`320Mi`, `1Gi`, bytes).
fn mib(q: &str) -> f64 {
    let (n, unit) = q.find(|c: char| c.is_ascii_alphabetic()).map_or((q, ""), |i| q.split_at(i));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("memory quantity {q:?}"));
    match unit {
        "Ki" => n / 1024.0,
        "Mi" => n,
        "Gi" => n * 1024.0,
        "" => n / (1024.0 * 1024.0),
        "M" => n * 1e6 / (1024.0 * 1024.0),
        "G" => n * 1e9 / (1024.0 * 1024.0),
        _ => panic!("memory quantity {q:?}"),
    }
}

/// A workload (Deployment, StatefulSet, Job) and its pod template.
struct Workload<'a> {
    kind: &'a str,
    name: &'a str,
    object: &'a Yaml,
}

impl<'a> Workload<'a> {
    fn pod(&self) -> &'a Yaml {
        &self.object["spec"]["template"]["spec"]
    }

    fn pod_labels(&self) -> BTreeMap<String, String> {
        labels(&self.object["spec"]["template"]["metadata"]["labels"])
    }

    fn component(&self) -> String {
        self.pod_labels().get("app.kubernetes.io/component").cloned().unwrap_or_default()
    }

    /// Containers and init containers.
    fn containers(&self) -> impl Iterator<Item = &'a Yaml> {
        list(&self.pod()["initContainers"]).iter().chain(list(&self.pod()["containers"]))
    }

    fn long_running(&self) -> bool {
        self.kind != "Job"
    }
}

impl Rendered {
    fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Yaml> + 'a {
        let kind = kind.to_owned();
        self.objects.iter().filter(move |o| s(&o["kind"]) == kind)
    }

    fn find(&self, kind: &str, name: &str) -> &Yaml {
        self.of_kind(kind)
            .find(|o| s(&o["metadata"]["name"]) == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.overlay))
    }

    fn workloads(&self) -> Vec<Workload<'_>> {
        let mut out = Vec::new();
        for kind in ["Deployment", "StatefulSet", "Job"] {
            for object in self.of_kind(kind) {
                out.push(Workload { kind, name: s(&object["metadata"]["name"]), object });
            }
        }
        assert!(out.len() >= 15, "{}: {} workloads", self.overlay, out.len());
        out
    }

    /// A container's environment as the pod would see it: ConfigMaps of `envFrom` resolved
    /// from the rendered output, then `env`; a Secret value is `secret:<name>/<key>`, a whole
    /// Secret in `envFrom` is listed in the second map (its keys are not in the manifests).
    fn env(&self, container: &Yaml) -> (BTreeMap<String, String>, Vec<String>) {
        let mut env = BTreeMap::new();
        let mut secrets = Vec::new();
        for from in list(&container["envFrom"]) {
            if let Some(name) = from["configMapRef"]["name"].as_str() {
                let data = labels(&self.find("ConfigMap", name)["data"]);
                env.extend(data);
            }
            if let Some(name) = from["secretRef"]["name"].as_str() {
                secrets.push(name.to_owned());
            }
        }
        for var in list(&container["env"]) {
            let value = if let Some(v) = var["value"].as_str() {
                v.to_owned()
            } else if let Some(name) = var["valueFrom"]["secretKeyRef"]["name"].as_str() {
                format!("secret:{name}/{}", s(&var["valueFrom"]["secretKeyRef"]["key"]))
            } else if let Some(name) = var["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                labels(&self.find("ConfigMap", name)["data"])
                    .get(s(&var["valueFrom"]["configMapKeyRef"]["key"]))
                    .cloned()
                    .unwrap_or_default()
            } else {
                "<field>".to_owned()
            };
            env.insert(s(&var["name"]).to_owned(), value);
        }
        (env, secrets)
    }

    /// The most replicas a workload runs: its autoscaler's maximum when it has one.
    fn max_replicas(&self, w: &Workload<'_>) -> i64 {
        let replicas = int(&w.object["spec"]["replicas"]).unwrap_or(1);
        let hpa = self.of_kind("HorizontalPodAutoscaler").find(|h| {
            s(&h["spec"]["scaleTargetRef"]["kind"]) == w.kind && s(&h["spec"]["scaleTargetRef"]["name"]) == w.name
        });
        hpa.map_or(replicas, |h| replicas.max(int(&h["spec"]["maxReplicas"]).expect("maxReplicas")))
    }
}

/// The domains `phoenix serve --services …` runs, or `None` for another command.
fn served_domains(container: &Yaml) -> Option<Vec<Domain>> {
    let args: Vec<&str> = list(&container["args"]).iter().map(s).collect();
    match args.as_slice() {
        ["serve", "--services", services] => Some(Domain::parse_list(services).expect("--services")),
        _ => None,
    }
}

/// Which domain schedules `job` (exhaustive: a new job must be counted here).
fn job_domain(job: Job) -> Domain {
    match job {
        Job::SessionEnd | Job::AbandonedSweep | Job::AttendanceClose | Job::VisitPartitions => Domain::Active,
        Job::Cleanup | Job::OutboxDelivery => Domain::Auth,
        Job::DeviceLogPurge => Domain::Iot,
        Job::RetentionPurge | Job::DbStats => Domain::Config,
    }
}

/// Connections one process of `container` may hold: its pools at PHOENIX_DB_POOL_SIZE and the
/// connections it opens outside them (db-budget.yaml).
fn connections_per_process(env: &BTreeMap<String, String>, container: &Yaml) -> i64 {
    let pool: i64 = env.get("PHOENIX_DB_POOL_SIZE").map_or(10, |v| v.parse().expect("PHOENIX_DB_POOL_SIZE"));
    let roles = env.get("PHOENIX_DB_ROLES").is_none_or(|v| !matches!(v.as_str(), "off" | "false" | "0"));
    match served_domains(container) {
        Some(domains) => {
            let pools = if roles { 1 + domains.len() as i64 } else { 1 };
            let listen = 1 + i64::from(domains.contains(&Domain::Active));
            let jobs = Job::ALL.iter().filter(|j| domains.contains(&job_domain(**j))).count() as i64;
            pools * pool + listen + jobs
        }
        // The gateway: one pool, nothing outside it. Migrations: one connection.
        None => match command(container) {
            "gateway" => pool,
            "migrate" => 1,
            _ => pool,
        },
    }
}

#[test]
fn every_container_has_requests_limits_and_probes() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        for w in r.workloads() {
            for c in w.containers() {
                let at = format!("{}: {} {}/{}", r.overlay, w.kind, w.name, s(&c["name"]));
                for side in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(!c["resources"][side][resource].is_badvalue(), "{at}: no {side}.{resource}");
                    }
                }
                assert!(
                    mib(s(&c["resources"]["requests"]["memory"])) <= mib(s(&c["resources"]["limits"]["memory"])),
                    "{at}: requests above limits"
                );
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false), "{at}");
                assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{at}");
                if !w.long_running() {
                    continue; // a Job's pod ends; it has a deadline instead of probes
                }
                assert!(!w.object["spec"]["template"]["spec"]["containers"].is_badvalue());
                for probe in ["readinessProbe", "livenessProbe"] {
                    assert!(c[probe].as_hash().is_some(), "{at}: no {probe}");
                }
                // A domain answers health under its own service name on its own port; the
                // gateway under phoenix.gateway on 8080; the broker is a TCP socket.
                let expected = match (served_domains(c).as_deref(), command(c)) {
                    (Some([domain]), _) => Some((50051 + i64::from(domain.port_offset()), domain.grpc_service())),
                    (_, "gateway") => Some((8080, phoenix_gateway::GATEWAY_HEALTH_NAME)),
                    _ => None,
                };
                for probe in ["readinessProbe", "livenessProbe"] {
                    match expected {
                        Some((port, service)) => {
                            assert_eq!(int(&c[probe]["grpc"]["port"]), Some(port), "{at}: {probe} port");
                            assert_eq!(s(&c[probe]["grpc"]["service"]), service, "{at}: {probe} service");
                            let ports: Vec<(&str, i64)> = list(&c["ports"])
                                .iter()
                                .map(|p| (s(&p["name"]), int(&p["containerPort"]).unwrap_or(0)))
                                .collect();
                            assert!(ports.contains(&("metrics", 9464)), "{at}: no metrics port 9464: {ports:?}");
                        }
                        None => assert_eq!(int(&c[probe]["tcpSocket"]["port"]), Some(1883), "{at}: {probe}"),
                    }
                }
            }
        }
    }
}

#[test]
fn auth_memory_fits_its_argon2_bound() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        let auth = r.find("Deployment", "phoenix-auth");
        let c = &auth["spec"]["template"]["spec"]["containers"][0];
        let (env, _) = r.env(c);
        let concurrency: f64 = env.get("PHOENIX_AUTH_HASH_CONCURRENCY").map_or(2.0, |v| v.parse().expect("number"));
        // docs/faults.md, README: 64 MiB per hash in flight + 128 MiB for the rest.
        let needed = 64.0 * concurrency + 128.0;
        let limit = mib(s(&c["resources"]["limits"]["memory"]));
        assert!(limit >= needed, "{}: auth limit {limit} MiB < {needed} MiB", r.overlay);
    }
}

#[test]
fn only_auth_holds_the_secret_key() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        let mut holders = BTreeSet::new();
        let mut key_secrets = BTreeSet::new();
        for w in r.workloads() {
            for c in w.containers() {
                let (env, _) = r.env(c);
                if let Some(v) = env.get("PHOENIX_SECRET_KEY") {
                    holders.insert(w.name.to_owned());
                    key_secrets.insert(v.trim_start_matches("secret:").split('/').next().unwrap_or("").to_owned());
                }
            }
        }
        assert_eq!(holders, BTreeSet::from(["phoenix-auth".to_owned()]), "{}", r.overlay);
        // No one else mounts the Secret it comes from as a whole, the gateway least of all.
        for w in r.workloads().iter().filter(|w| w.name != "phoenix-auth") {
            for c in w.containers() {
                let (env, secrets) = r.env(c);
                assert!(!env.contains_key("PHOENIX_SECRET_KEY"), "{}: {}", r.overlay, w.name);
                for secret in &secrets {
                    assert!(!key_secrets.contains(secret), "{}: {} loads Secret {secret}", r.overlay, w.name);
                }
                for value in env.values() {
                    for secret in &key_secrets {
                        assert!(!value.starts_with(&format!("secret:{secret}/")), "{}: {}", r.overlay, w.name);
                    }
                }
            }
        }
        let gateway = r.find("StatefulSet", "phoenix-gateway");
        let (env, _) = r.env(&gateway["spec"]["template"]["spec"]["containers"][0]);
        assert!(!env.contains_key("PHOENIX_SECRET_KEY"), "{}: the gateway", r.overlay);
        assert!(env.contains_key("PHOENIX_GATEWAY_CLIENT_SECRET") && env.contains_key("PHOENIX_DEVICE_KEY_SECRET"));
    }
}

#[test]
fn database_connections_fit_max_connections() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        let budget = labels(&r.find("ConfigMap", "phoenix-db-budget")["data"]);
        let get = |k: &str| -> i64 { budget.get(k).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{k}")) };
        let mut total = get("superuser_reserved_connections") + get("operator_connections");
        let mut lines = vec![format!("{}: {total} reserved (superuser + operators)", r.overlay)];
        for w in r.workloads() {
            let per_process = w
                .containers()
                .filter(|c| !s(&c["image"]).contains("mosquitto"))
                .map(|c| connections_per_process(&r.env(c).0, c))
                .max();
            let Some(per_process) = per_process else { continue };
            // Pods at once: the most replicas, + the pods a rollout adds while old ones drain.
            let pods = match w.kind {
                "Job" => 1,
                "StatefulSet" => r.max_replicas(&w), // replaces a pod only after it exited
                _ => {
                    let strategy = &w.object["spec"]["strategy"];
                    let extra = match s(&strategy["type"]) {
                        "Recreate" => 0,
                        _ => {
                            let surge = int(&strategy["rollingUpdate"]["maxSurge"]);
                            assert_eq!(surge, Some(0), "{}: {}: count a surge in the budget first", r.overlay, w.name);
                            int(&strategy["rollingUpdate"]["maxUnavailable"]).expect("maxUnavailable as a number")
                        }
                    };
                    r.max_replicas(&w) + extra
                }
            };
            total += pods * per_process;
            lines.push(format!("  {:<20} {pods} × {per_process} = {}", w.name, pods * per_process));
        }
        let max = get("max_connections");
        lines.push(format!("  total {total} of max_connections {max}"));
        eprintln!("{}", lines.join("\n"));
        assert!(total <= max, "{}", lines.join("\n"));
    }
}

#[test]
fn every_component_has_a_network_policy_and_only_the_intended_paths_are_open() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        let policies: Vec<&Yaml> = r.of_kind("NetworkPolicy").collect();
        let deny = policies.iter().find(|p| {
            p["spec"]["podSelector"].as_hash().is_some_and(|h| h.is_empty())
                && list(&p["spec"]["policyTypes"]).len() == 2
                && p["spec"]["ingress"].is_badvalue()
                && p["spec"]["egress"].is_badvalue()
        });
        assert!(deny.is_some(), "{}: no default-deny policy", r.overlay);
        let workloads = r.workloads();
        let by_component: BTreeMap<String, BTreeMap<String, String>> =
            workloads.iter().map(|w| (w.component(), w.pod_labels())).collect();
        for w in &workloads {
            let own = policies.iter().any(|p| selects(&p["spec"]["podSelector"], &w.pod_labels()));
            assert!(own, "{}: no NetworkPolicy selects {} {}", r.overlay, w.kind, w.name);
        }
        let gateway = &by_component["gateway"];
        for p in &policies {
            let name = s(&p["metadata"]["name"]);
            let selected: Vec<&String> = by_component
                .iter()
                .filter(|(_, l)| {
                    selects(&p["spec"]["podSelector"], l)
                        || p["spec"]["podSelector"].as_hash().is_some_and(|h| h.is_empty())
                })
                .map(|(c, _)| c)
                .collect();
            for rule in list(&p["spec"]["ingress"]) {
                let ports: Vec<i64> = list(&rule["ports"]).iter().filter_map(|p| int(&p["port"])).collect();
                let from = list(&rule["from"]);
                assert!(!from.is_empty(), "{}: {name}: an ingress rule open to everyone", r.overlay);
                // Domain ports: from the gateway's pods only.
                if ports.iter().any(|p| (50051..=50061).contains(p)) {
                    for peer in from {
                        assert!(
                            peer["namespaceSelector"].is_badvalue() && peer["ipBlock"].is_badvalue(),
                            "{}: {name}: domain ports open beyond the namespace",
                            r.overlay
                        );
                        assert!(
                            selects(&peer["podSelector"], gateway),
                            "{}: {name}: domain ports for {peer:?}",
                            r.overlay
                        );
                    }
                }
                // The broker: the gateway's pods, or readers from outside (ipBlock).
                if selected.iter().any(|c| c.as_str() == "mosquitto") {
                    for peer in from {
                        let ok = (selects(&peer["podSelector"], gateway) && peer["namespaceSelector"].is_badvalue())
                            || !peer["ipBlock"].is_badvalue();
                        assert!(ok, "{}: {name}: the broker open to {peer:?}", r.overlay);
                    }
                }
            }
            // PostgreSQL: only the services (domains, gateway) and the Jobs.
            for rule in list(&p["spec"]["egress"]) {
                if list(&rule["ports"]).iter().any(|p| int(&p["port"]) == Some(5432)) {
                    for c in &selected {
                        let tier = by_component[c.as_str()].get("phoenix/tier").cloned().unwrap_or_default();
                        assert!(
                            ["domain", "gateway", "job"].contains(&tier.as_str()),
                            "{}: {name} lets {c} reach the database",
                            r.overlay
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn images_are_pinned_and_replicas_as_documented() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        for w in r.workloads() {
            for c in w.containers() {
                let image = s(&c["image"]);
                let last = image.rsplit('/').next().unwrap_or(image);
                let tag = last.split_once(':').map(|(_, t)| t);
                assert!(
                    image.contains("@sha256:") || tag.is_some_and(|t| !t.is_empty() && t != "latest"),
                    "{}: {} uses image {image:?}",
                    r.overlay,
                    w.name
                );
            }
        }
    }
    let production = overlays.iter().find(|r| r.overlay == "production").expect("production");
    let gateway = production.find("StatefulSet", "phoenix-gateway");
    assert!(int(&gateway["spec"]["replicas"]).is_some_and(|n| n >= 2), "production gateway replicas");
    let (env, _) = production.env(&gateway["spec"]["template"]["spec"]["containers"][0]);
    assert_eq!(env.get("PHOENIX_MQTT_SHARED_GROUP").map(String::as_str), Some("phoenix-gateway"));
    assert_eq!(env.get("PHOENIX_MQTT_CLIENT_ID").map(String::as_str), Some("<field>"), "the pod's name");
    for domain in Domain::ALL {
        let d = production.find("Deployment", &format!("phoenix-{}", domain.name()));
        assert!(int(&d["spec"]["replicas"]).is_some_and(|n| n >= 2), "production {domain}");
        let pdb = production
            .of_kind("PodDisruptionBudget")
            .any(|p| selects(&p["spec"]["selector"], &labels(&d["spec"]["template"]["metadata"]["labels"])));
        assert!(pdb, "production {domain}: no PodDisruptionBudget");
    }
    // Readers: TLS only from outside in production.
    let readers = production.find("Service", "phoenix-mqtt");
    assert_eq!(s(&readers["spec"]["type"]), "LoadBalancer");
    let ports: Vec<i64> = list(&readers["spec"]["ports"]).iter().filter_map(|p| int(&p["port"])).collect();
    assert_eq!(ports, [8883]);
    // Prometheus scrapes the `metrics` port of every domain's and the gateway's Service.
    let monitor = production.find("ServiceMonitor", "phoenix");
    assert_eq!(s(&monitor["spec"]["endpoints"][0]["port"]), "metrics");
    let scraped = production
        .of_kind("Service")
        .filter(|svc| selects(&monitor["spec"]["selector"], &labels(&svc["metadata"]["labels"])))
        .filter(|svc| list(&svc["spec"]["ports"]).iter().any(|p| s(&p["name"]) == "metrics"))
        .count();
    assert_eq!(scraped, Domain::ALL.len() + 1, "Services scraped");
}

#[test]
fn the_broker_uses_the_reader_acl_and_the_gateway_reaches_it() {
    let Some(overlays) = rendered() else { return };
    let root = phoenix_tests::workspace_root();
    let acl = std::fs::read_to_string(root.join("deploy/mosquitto/acl")).expect("acl");
    let copy = std::fs::read_to_string(root.join("deploy/kubernetes/base/mosquitto/acl")).expect("acl copy");
    assert_eq!(copy, acl, "deploy/kubernetes/base/mosquitto/acl must equal deploy/mosquitto/acl");
    for r in &overlays {
        let broker = r.find("StatefulSet", "mosquitto");
        let config_map = s(&list(&broker["spec"]["template"]["spec"]["volumes"])
            .iter()
            .find(|v| s(&v["name"]) == "config")
            .expect("config volume")["configMap"]["name"]);
        let data = labels(&r.find("ConfigMap", config_map)["data"]);
        assert_eq!(data.get("acl"), Some(&acl), "{}: the mounted ACL", r.overlay);
        let conf = &data["mosquitto.conf"];
        for line in ["allow_anonymous false", "persistence true", "acl_file /mosquitto/config/acl"] {
            assert!(conf.lines().any(|l| l.trim() == line), "{}: mosquitto.conf lacks {line:?}", r.overlay);
        }
        assert!(!broker["spec"]["volumeClaimTemplates"][0].is_badvalue(), "{}: no volume", r.overlay);
        let gateway = r.find("StatefulSet", "phoenix-gateway");
        let (env, _) = r.env(&gateway["spec"]["template"]["spec"]["containers"][0]);
        let service = r.find("Service", "mosquitto");
        let port = int(&service["spec"]["ports"][0]["port"]).expect("port");
        assert_eq!(env["MQTT_URL"], format!("mqtt://mosquitto:{port}"), "{}", r.overlay);
    }
}

#[test]
fn bootstrap_job_runs_the_idempotent_commands_with_the_gateways_secret() {
    let Some(overlays) = rendered() else { return };
    for r in &overlays {
        let job = r.find("Job", "phoenix-bootstrap");
        let w = Workload { kind: "Job", name: "phoenix-bootstrap", object: job };
        let args: Vec<Vec<&str>> = w.containers().map(|c| list(&c["args"]).iter().map(s).collect()).collect();
        assert_eq!(args[0], ["create-admin"], "{}", r.overlay);
        assert_eq!(
            args[1],
            [
                "create-service-client",
                "--client-id=gateway",
                "--permissions=scans:process",
                "--secret-from-env=PHOENIX_GATEWAY_CLIENT_SECRET"
            ],
            "{}",
            r.overlay
        );
        let (job_env, _) = r.env(w.containers().nth(1).expect("second container"));
        let gateway = r.find("StatefulSet", "phoenix-gateway");
        let (gateway_env, _) = r.env(&gateway["spec"]["template"]["spec"]["containers"][0]);
        assert_eq!(job_env["PHOENIX_GATEWAY_CLIENT_SECRET"], gateway_env["PHOENIX_GATEWAY_CLIENT_SECRET"]);
        let migrate = r.find("Job", "phoenix-migrate");
        let margs: Vec<&str> =
            list(&migrate["spec"]["template"]["spec"]["containers"][0]["args"]).iter().map(s).collect();
        assert_eq!(margs, ["migrate", "up"]);
    }
}

async fn exchange(app: &TestApp, secret: &str) -> Result<Vec<String>, Code> {
    let mut client = auth_client(app).await;
    client
        .exchange_client_credentials(pb::ExchangeClientCredentialsRequest {
            client_id: "gateway".into(),
            client_secret: secret.into(),
        })
        .await
        .map(|r| r.into_inner().permissions)
        .map_err(|e| e.code())
}

/// What the bootstrap Job runs, twice and then after the operator rotated the Secret.
#[tokio::test]
async fn bootstrap_commands_change_nothing_the_second_time() {
    let app = TestApp::spawn(&[Domain::Auth]).await;
    let pool = app.db.pool().await;
    let password = "Bootstrap-Admin-7";
    assert!(phoenix::admin::create_admin(&pool, "head@school.example", password).await.expect("first"));
    assert!(!phoenix::admin::create_admin(&pool, "head@school.example", "Other-Password-8").await.expect("second"));

    let perms = ["scans:process".to_owned()];
    let secret = "a".repeat(20) + &"b".repeat(44);
    let ensure = async |secret: Option<&str>, if_missing: bool| {
        phoenix::admin::ensure_service_client(&pool, "gateway", &perms, secret, if_missing).await.expect("ensure")
    };
    assert_eq!(ensure(Some(&secret), false).await, ServiceClientOutcome::Created(None));
    let hash_after_create = stored_hash(&app).await;
    assert_eq!(ensure(Some(&secret), false).await, ServiceClientOutcome::Unchanged);
    assert_eq!(stored_hash(&app).await, hash_after_create, "an unchanged client is not rewritten");
    assert_eq!(exchange(&app, &secret).await, Ok(perms.to_vec()));

    // The operator put another secret in the Secret: the next run takes it, the old one stops.
    let rotated = "c".repeat(64);
    assert_eq!(ensure(Some(&rotated), false).await, ServiceClientOutcome::Updated(None));
    assert_eq!(exchange(&app, &rotated).await, Ok(perms.to_vec()));
    assert_eq!(exchange(&app, &secret).await, Err(Code::Unauthenticated));

    // --if-missing never rotates an existing client; without a secret it would have.
    assert_eq!(ensure(None, true).await, ServiceClientOutcome::Unchanged);
    assert_eq!(exchange(&app, &rotated).await, Ok(perms.to_vec()));

    // A short secret is refused without echoing it.
    let err = phoenix::admin::ensure_service_client(&pool, "gateway", &perms, Some("short-secret"), false)
        .await
        .expect_err("short");
    assert!(err.to_string().contains("12 characters") && !err.to_string().contains("short-secret"), "{err}");
    app.stop().await;
}

async fn stored_hash(app: &TestApp) -> String {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use phoenix_db::schema::auth::service_clients as sc;
    let pool = app.db.pool().await;
    let mut conn = pool.get().await.expect("conn");
    sc::table.filter(sc::client_id.eq("gateway")).select(sc::secret_hash).first(&mut conn).await.expect("hash")
}
