//! The Kubernetes manifests (deploy/k8s), checked offline as far as a machine without a cluster
//! can: every kustomization renders (`kubectl kustomize`), every rendered object passes the
//! Kubernetes API's schema strictly (`kubernetes-validate --strict`), and the pieces agree with
//! each other and with alcor-scale itself: the scenario in the ConfigMap is valid for this
//! build, names the fleet's headless Service and events port and waits for as many fleets as
//! the StatefulSet runs, and targets the control plane's Service.
//!
//! Needs `kubectl` and `kubernetes-validate` (with its Python, for YAML); `.ci/run` installs
//! them and sets ALCOR_SCALE_REQUIRE_K8S=1, so CI fails rather than skips without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The validator's virtualenv (`.ci/run` makes it), or whatever is on PATH.
fn validator() -> Option<(PathBuf, PathBuf)> {
    let venv = std::env::var_os("ALCOR_SCALE_K8S_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/k8s-venv"));
    let (v, py) = (venv.join("bin/kubernetes-validate"), venv.join("bin/python"));
    if v.exists() && py.exists() {
        return Some((v, py));
    }
    let on_path = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    on_path.then(|| (PathBuf::from("kubernetes-validate"), PathBuf::from("python3")))
}

fn objects(python: &Path, yaml: &Path) -> Vec<Value> {
    let o = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)",
        ])
        .arg(yaml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_manifests_render_validate_and_agree_with_each_other() {
    let required = std::env::var_os("ALCOR_SCALE_REQUIRE_K8S").is_some();
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    let validator = validator();
    if !kubectl || validator.is_none() {
        assert!(
            !required,
            "ALCOR_SCALE_REQUIRE_K8S is set, but kubectl ({kubectl}) or kubernetes-validate ({}) is missing",
            validator.is_some()
        );
        eprintln!("skipped: needs kubectl and kubernetes-validate (.ci/run installs both)");
        return;
    }
    let (validate, python) = validator.unwrap();
    let dir = tmp("k8s");
    for (name, path, fleets) in [("base", "k8s/base", 4), ("blocks", "k8s/overlays/blocks", 8)] {
        let o = Command::new("kubectl")
            .args(["kustomize"])
            .arg(deploy().join(path))
            .output()
            .unwrap();
        assert!(o.status.success(), "{path}: {}", text(&o));
        let rendered = dir.join(format!("{name}.yaml"));
        std::fs::write(&rendered, &o.stdout).unwrap();
        let v = Command::new(&validate)
            .args(["--strict", "--quiet"])
            .arg(&rendered)
            .output()
            .unwrap();
        assert!(v.status.success(), "{path} fails the schema: {}", text(&v));

        let objs = objects(&python, &rendered);
        assert!(
            objs.iter()
                .all(|o| o["metadata"]["namespace"] == "alcor-scale" || o["kind"] == "Namespace"),
            "{path}: every object in the namespace"
        );
        // The fleet: a headless Service over the StatefulSet's pods, with the events port.
        let svc = find(&objs, "Service", "alcor-scale-fleet");
        assert_eq!(svc["spec"]["clusterIP"], "None", "{path}");
        let events_port = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "events")
            .unwrap()["port"]
            .as_u64()
            .unwrap();
        let sts = find(&objs, "StatefulSet", "alcor-scale-fleet");
        assert_eq!(sts["spec"]["replicas"], fleets, "{path}");
        assert_eq!(sts["spec"]["serviceName"], "alcor-scale-fleet", "{path}");
        let pod = &sts["spec"]["template"];
        assert_eq!(
            &pod["metadata"]["labels"]["app.kubernetes.io/name"],
            &svc["spec"]["selector"]["app.kubernetes.io/name"]
        );
        let agent = &pod["spec"]["containers"][0];
        let command = format!("{} {}", agent["command"], agent["args"]);
        assert!(
            command.contains(&format!("0.0.0.0:{events_port}")),
            "{path}: the agents export events on the Service's port: {command}"
        );
        assert!(command.contains("agents"), "{command}");

        // The scenario: valid for this build, pointing at the fleet Service and the control plane.
        let cm = find(&objs, "ConfigMap", "alcor-scale-scenario");
        let toml_text = cm["data"]["scenario.toml"].as_str().unwrap();
        let file = dir.join(format!("{name}-scenario.toml"));
        std::fs::write(&file, toml_text).unwrap();
        let o = run(&["validate", file.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{path}: the scenario in the ConfigMap: {}",
            text(&o)
        );
        let scenario: toml::Value = toml::from_str(toml_text).unwrap();
        assert_eq!(
            scenario["agents"]["remote"][0].as_str(),
            Some(format!("alcor-scale-fleet:{events_port}").as_str()),
            "{path}"
        );
        assert_eq!(
            scenario["agents"]["remote_expect"].as_integer(),
            Some(fleets),
            "{path}: it waits for every fleet pod"
        );
        let cp = find(&objs, "Service", "alcor-scale-control-plane");
        let cp_port = cp["spec"]["ports"][0]["port"].as_u64().unwrap();
        assert_eq!(
            scenario["target"]["url"].as_str(),
            Some(format!("http://alcor-scale-control-plane:{cp_port}").as_str()),
            "{path}"
        );

        // The Job runs that scenario from the ConfigMap and writes to the volume.
        let job = find(&objs, "Job", "alcor-scale-run");
        let spec = &job["spec"]["template"]["spec"];
        let args: Vec<&str> = spec["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mount = spec["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "scenario")
            .unwrap();
        assert!(
            args.contains(&format!("{}/scenario.toml", mount["mountPath"].as_str().unwrap()).as_str()),
            "{args:?}"
        );
        let vol = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "scenario")
            .unwrap();
        assert_eq!(
            vol["configMap"]["name"], cm["metadata"]["name"],
            "{path}: the generated ConfigMap's hashed name"
        );
        assert_eq!(job["spec"]["backoffLimit"], 0);
    }
    // The image the manifests name is the one the Dockerfile builds.
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("--bin alcor-scale"), "{dockerfile}");
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/alcor-scale\"]"),
        "{dockerfile}"
    );
}
