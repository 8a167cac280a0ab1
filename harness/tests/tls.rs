//! An `https://` target: the reference control plane behind a TLS terminator with a self-signed
//! certificate (made by the test), all on loopback. Both load engines (the harness's own client
//! and goose's) must trust it through `target.ca_file`, refuse it without, and accept it
//! unverified only with `target.insecure`.

mod common;

use std::sync::Arc;

use common::*;
use control_plane::{ControlPlane, ControlPlaneConfig};
use reports::summary::Summary;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

/// Terminates TLS on a loopback port and forwards each connection to `backend`.
async fn tls_terminator(
    backend: std::net::SocketAddr,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

#[test]
fn an_https_target_is_driven_by_both_engines_and_verified_as_configured() {
    let _serial = serial();
    let dir = tmp("tls");
    // The control plane and the terminator run on this runtime's threads while the test runs
    // `alcor-scale` as a user would.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let ca_set = format!("target.ca_file={}", ca.display());
    // Each run gets a control plane of its own behind its own terminator: a control plane keeps
    // the nodes a run registered, and the runs share their agents' addresses.
    let run_with = |name: &str, sets: &[&str]| {
        let (cp, port) = rt.block_on(async {
            let cp = ControlPlane::start(ControlPlaneConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..Default::default()
            })
            .await
            .unwrap();
            let backend: std::net::SocketAddr = cp
                .base_url()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap();
            let port = tls_terminator(backend, made.cert.der().clone(), key.clone_key()).await;
            (cp, port)
        });
        let out = dir.join(name);
        let url = format!("target.url=https://localhost:{port}");
        let mut all = vec!["target.kind=alcor", url.as_str()];
        all.extend_from_slice(sets);
        let o = smoke("127.5.40.1", &all, &out, &[]);
        rt.block_on(cp.shutdown(std::time::Duration::from_secs(2)));
        (o, out)
    };

    // Trusted through the CA file: the open phase (the harness's client) and the closed phase
    // (goose's) both succeed.
    let (o, out) = run_with("trusted", &[&ca_set]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    for p in s.phases.iter().filter(|p| p.kind == "load") {
        assert!(p.requests > 0 && p.errors == 0, "{p:?}");
    }
    assert!(s.metrics["port_programmed"].count > 0);

    // Unknown issuer: refused at the first call.
    let (o, out) = run_with("refused", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let reason = Summary::read(&out).unwrap().partial_reason.unwrap_or_default();
    assert!(
        reason.contains("registering the agents as nodes") && reason.to_lowercase().contains("certificate"),
        "{reason}"
    );

    // Unverified, only because the scenario says so.
    let (o, _) = run_with(
        "insecure",
        &[
            "target.insecure=true",
            "phases[0].duration=\"1s\"",
            "phases[1].requests=20",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A CA file that is not one is refused with the scenario, naming the field.
    std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
    let junk = format!("target.ca_file={}", dir.join("junk.pem").display());
    let (o, _) = run_with("junk", &[&junk]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("target.ca_file"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
