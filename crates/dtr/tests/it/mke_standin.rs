//! Self-tests of the MKE stand-in (tests/common/mke.rs): its TLS and CA, login, the token check
//! in front of the Docker API, forwarding to the real engine (streamed bodies both ways,
//! connection upgrades of attached execs), and the scheduler's placement rules. The tests that
//! reach the engine skip without one and fail under CI (tests/common's rule); they only make
//! containers named `mkest-<random hex>`, removed by a guard even when the test fails.

use std::time::Duration;

use crate::common::mke::{MkeOptions, MkeStandIn};
use crate::common::{docker, docker_ok};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, LogsOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// The image of the test containers: the base of every image of this project, present
/// wherever the images were built (scripts/build-images.sh).
const IMAGE: &str = "debian:bookworm-slim";

/// Whether the engine tests may run: `false` means skip; a missing engine under CI (or
/// DTR_REQUIRE_ENGINE=1) fails here. The one-cluster lock is not held: these tests install no
/// DTR and touch only their own `mkest-*` containers.
fn engine_up() -> bool {
    crate::common::engine().is_some()
}

/// Containers of one test, `mkest-<hex>`, force-removed (with their anonymous volumes) on drop.
struct Containers(Vec<String>);

impl Containers {
    fn new() -> Self {
        Containers(Vec::new())
    }

    /// A new unique name, to be removed with the others.
    fn name(&mut self) -> String {
        let name = format!("mkest-{}", dtr_core::options::ReplicaId::random());
        self.0.push(name.clone());
        name
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            docker(&["rm", "-f", "-v", name]);
        }
    }
}

/// A client that trusts only `mke`'s CA (no proxy from the environment).
fn https_client(mke: &MkeStandIn) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(mke.ca_pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn login(mke: &MkeStandIn, body: &str) -> (u16, Value) {
    let response = https_client(mke)
        .post(format!("{}/auth/login", mke.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /auth/login");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// A session token of `mke`'s own user.
async fn token(mke: &MkeStandIn) -> String {
    let credentials = json!({ "username": mke.username(), "password": mke.password() });
    let (status, body) = login(mke, &credentials.to_string()).await;
    assert_eq!(status, 200, "{body}");
    body["auth_token"].as_str().expect("auth_token").to_string()
}

/// `GET path` with an optional `Authorization` value: (status, body).
async fn get(mke: &MkeStandIn, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut request = https_client(mke).get(format!("{}{path}", mke.url()));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("GET through the stand-in");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A bollard client that speaks to the engine through `mke` exactly as the bootstrapper does
/// (`dtr_bootstrap::engine::mke`): TLS trusting only the stand-in's CA, a login, the session token on
/// every request.
async fn bollard_through(mke: &MkeStandIn) -> Docker {
    let target = dtr_bootstrap::engine::mke::MkeTarget {
        url: mke.url().parse().unwrap(),
        username: mke.username().to_string(),
        password: dtr_core::secret::Secret::new(mke.password().to_string()),
        ca_pem: Some(mke.ca_pem()),
        insecure: false,
    };
    let docker = target.connect().await.expect("log in through the stand-in");
    // Docker 20.10 speaks 1.41, older than bollard's default
    docker.negotiate_version().await.expect("GET /version")
}

/// Creates a container through `docker` (the stand-in): `sleep 30` after printing `started`.
async fn create(api: &Docker, name: &str, env: &[&str]) -> Result<(), bollard::errors::Error> {
    let body = ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo started; exec sleep 30".into(),
        ]),
        env: Some(env.iter().map(|e| e.to_string()).collect()),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.into()),
        ..Default::default()
    };
    api.create_container(Some(options), body).await.map(|_| ())
}

/// The message of a refused Docker API call.
fn refusal(result: Result<(), bollard::errors::Error>) -> (u16, String) {
    match result {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        }) => (status_code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// This engine's swarm node: (hostname, id, role).
fn this_node() -> (String, String, String) {
    let out = docker_ok(&[
        "node",
        "inspect",
        "self",
        "-f",
        "{{.Description.Hostname}} {{.ID}} {{.Spec.Role}}",
    ]);
    let mut fields = out.split_whitespace().map(String::from);
    let mut next = || fields.next().expect("three fields");
    (next(), next(), next())
}

#[tokio::test]
async fn serves_its_ca_and_a_certificate_for_127_0_0_1_and_localhost() {
    let mke = MkeStandIn::start(MkeOptions::default());
    assert!(mke.url().starts_with("https://127.0.0.1:"), "{}", mke.url());

    let (status, ca) = get(&mke, "/ca", None).await;
    assert_eq!(status, 200);
    assert_eq!(ca, mke.ca_pem());
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    // a client trusting only that CA connects by IP and by name; the health check needs no
    // login, with or without the API version prefix
    assert_eq!(get(&mke, "/_ping", None).await, (200, "OK".into()));
    assert_eq!(get(&mke, "/v1.41/_ping", None).await, (200, "OK".into()));
    let by_name = https_client(&mke)
        .get(format!("https://localhost:{}/_ping", mke.port()))
        .send()
        .await
        .expect("localhost is in the certificate");
    assert_eq!(by_name.status(), 200);

    // and a client that does not trust it does not connect: the TLS is real
    let other = MkeStandIn::start(MkeOptions::default());
    let distrusting = https_client(&other);
    let err = distrusting
        .get(format!("{}/_ping", mke.url()))
        .send()
        .await
        .expect_err("another CA's client must not connect");
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn login_hands_out_tokens_for_the_right_password_only() {
    let mke = MkeStandIn::start(MkeOptions {
        username: "ops".into(),
        ..Default::default()
    });
    assert_eq!(mke.username(), "ops");
    assert_eq!(mke.password().len(), 16);

    let first = token(&mke).await;
    let second = token(&mke).await;
    assert!(first.len() >= 32, "{first}");
    assert_ne!(first, second, "every login gets its own token");

    let wrong_password = json!({ "username": "ops", "password": "not-it" }).to_string();
    let (status, body) = login(&mke, &wrong_password).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]})
    );
    let wrong_user = json!({ "username": "admin", "password": mke.password() }).to_string();
    assert_eq!(login(&mke, &wrong_user).await.0, 401);

    for malformed in ["not json", "{\"username\": \"ops\"}", "[]"] {
        let (status, body) = login(&mke, malformed).await;
        assert_eq!(status, 400, "{malformed}: {body}");
        assert_eq!(body["errors"][0]["code"], "INVALID_JSON", "{body}");
    }
    assert_eq!(mke.logins(), (2, 5));
}

#[tokio::test]
async fn the_docker_api_needs_a_token_it_issued() {
    if !engine_up() {
        return;
    }
    let mke = MkeStandIn::start(MkeOptions::default());
    let other = MkeStandIn::start(MkeOptions::default());
    let foreign = format!("Bearer {}", token(&other).await);
    let basic = format!("Basic {}", mke.password());
    let made_up = format!("Bearer {}", crate::common::generated_secret());
    let unauthorized = r#"{"message":"unauthorized: missing or invalid session token"}"#;
    for authorization in [
        None,
        Some(made_up.as_str()),
        Some(foreign.as_str()),
        Some(basic.as_str()),
    ] {
        let (status, body) = get(&mke, "/version", authorization).await;
        assert_eq!(
            (status, body.as_str()),
            (401, unauthorized),
            "{authorization:?}"
        );
    }
    let (status, _) = get(&mke, "/v1.41/containers/json", None).await;
    assert_eq!(status, 401);
    assert_eq!(mke.rejected_requests(), 5);
    assert_eq!(mke.forwarded_requests(), 0);

    // with a token, the engine answers
    let bearer = format!("Bearer {}", token(&mke).await);
    let (status, body) = get(&mke, "/version", Some(&bearer)).await;
    assert_eq!(status, 200, "{body}");
    let version: Value = serde_json::from_str(&body).unwrap();
    let engine_version = docker_ok(&["version", "-f", "{{.Server.Version}}"]);
    assert_eq!(version["Version"], engine_version.as_str(), "{body}");
    let (status, body) = get(&mke, "/v1.41/containers/json?all=1", Some(&bearer)).await;
    assert_eq!(status, 200, "{body}");
    assert!(serde_json::from_str::<Vec<Value>>(&body).is_ok(), "{body}");
    // the engine's own errors come through as they are
    let (status, body) = get(&mke, "/v1.41/containers/mkest-none/json", Some(&bearer)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(mke.forwarded_requests(), 3);
    assert_eq!(mke.rejected_requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_exec_logs_and_archives_go_through() {
    if !engine_up() {
        return;
    }
    let mut containers = Containers::new();
    let name = containers.name();
    let mke = MkeStandIn::start(MkeOptions::default());
    let api = bollard_through(&mke).await;
    api.ping().await.expect("ping through the stand-in");

    create(&api, &name, &["A=1"]).await.expect("create");
    api.start_container(&name, None).await.expect("start");
    assert_eq!(mke.placements(), vec![(name.clone(), None)]);

    // a followed log is streamed: "started" arrives while the container still runs
    let mut logs = api.logs(
        &name,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            ..Default::default()
        }),
    );
    let first = tokio::time::timeout(Duration::from_secs(10), logs.next())
        .await
        .expect("the first log line before the container ends")
        .expect("a log line")
        .expect("log output");
    assert_eq!(first.to_string(), "started\n");
    drop(logs);

    // attach is upgraded too (101): the log replayed, then the live stream
    let attached = api
        .attach_container(
            &name,
            Some(AttachContainerOptions {
                logs: true,
                stream: true,
                stdout: true,
                ..Default::default()
            }),
        )
        .await
        .expect("attach through the stand-in");
    let mut attached_output = attached.output;
    let first = tokio::time::timeout(Duration::from_secs(10), attached_output.next())
        .await
        .expect("the attached log before the container ends")
        .expect("output")
        .expect("attach output");
    assert_eq!(first.to_string(), "started\n");
    drop((attached_output, attached.input));

    // attached exec: the engine answers 101 and both sides of the upgrade are relayed
    let exec = api
        .create_exec(
            &name,
            CreateExecOptions {
                cmd: Some(vec!["sh", "-c", "echo out; echo err >&2; exit 3"]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let StartExecResults::Attached { mut output, .. } =
        api.start_exec(&exec.id, None).await.unwrap()
    else {
        panic!("not attached")
    };
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), output.next())
        .await
        .expect("exec output ends")
    {
        match chunk.unwrap() {
            bollard::container::LogOutput::StdOut { message } => {
                out.push_str(&String::from_utf8_lossy(&message))
            }
            bollard::container::LogOutput::StdErr { message } => {
                err.push_str(&String::from_utf8_lossy(&message))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let inspected = api.inspect_exec(&exec.id).await.unwrap();
    assert_eq!(inspected.exit_code, Some(3));

    // stdin through the upgraded connection, closed by the client: `cat` sees its end
    let exec = api
        .create_exec(
            &name,
            CreateExecOptions {
                cmd: Some(vec!["cat"]),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = api
        .start_exec(&exec.id, Some(StartExecOptions::default()))
        .await
        .unwrap()
    else {
        panic!("not attached")
    };
    input.write_all(b"hello through mke\n").await.unwrap();
    input.shutdown().await.unwrap();
    let mut echoed = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), output.next())
        .await
        .expect("cat ends once its stdin is closed")
    {
        echoed.push_str(&chunk.unwrap().to_string());
    }
    assert_eq!(echoed, "hello through mke\n");

    // an exec started without Upgrade: the engine answers 200 and hijacks the connection; the
    // raw stream comes through as the body
    let bearer = format!("Bearer {}", token(&mke).await);
    let client = https_client(&mke);
    let created: Value = client
        .post(format!("{}/v1.41/containers/{name}/exec", mke.url()))
        .header("authorization", &bearer)
        .json(&json!({"AttachStdout": true, "Cmd": ["echo", "raw"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = client
        .post(format!(
            "{}/v1.41/exec/{}/start",
            mke.url(),
            created["Id"].as_str().unwrap()
        ))
        .header("authorization", &bearer)
        .json(&json!({"Detach": false, "Tty": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.docker.raw-stream"
    );
    let raw = response.bytes().await.unwrap();
    // one stdout frame: stream 1, three zero bytes, the length (big endian), the data
    assert_eq!(&raw[..], b"\x01\x00\x00\x00\x00\x00\x00\x04raw\n");

    // a large request body (a tar archive) is relayed whole
    let payload = vec![b'x'; 8 << 20];
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(payload.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "big.bin", &payload[..])
        .unwrap();
    let archive = tar.into_inner().unwrap();
    api.upload_to_container(
        &name,
        Some(UploadToContainerOptions {
            path: "/tmp".into(),
            ..Default::default()
        }),
        bollard::body_full(archive.into()),
    )
    .await
    .expect("PUT /containers/{id}/archive");
    let size = docker_ok(&["exec", &name, "stat", "-c", "%s", "/tmp/big.bin"]);
    assert_eq!(size, (8 << 20).to_string());

    assert_eq!(mke.rejected_requests(), 0);
    assert!(
        mke.forwarded_requests() >= 13,
        "{}",
        mke.forwarded_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_are_placed_on_the_node_their_constraint_names() {
    if !engine_up() {
        return;
    }
    let (hostname, node_id, role) = this_node();
    let mut containers = Containers::new();
    let mke = MkeStandIn::start(MkeOptions::default());
    let api = bollard_through(&mke).await;

    // by hostname and by node id; the engine never sees the constraint entry
    let by_name = containers.name();
    let constraint = format!("constraint:node=={hostname}");
    create(&api, &by_name, &["A=1", &constraint, "B=2"])
        .await
        .expect("placed by hostname");
    let by_id = containers.name();
    let constraint_id = format!("constraint:node=={node_id}");
    create(&api, &by_id, &[&constraint_id])
        .await
        .expect("placed by node id");
    let env = docker_ok(&["inspect", "-f", "{{json .Config.Env}}", &by_name]);
    let env: Vec<String> = serde_json::from_str(&env).unwrap();
    assert!(
        env.contains(&"A=1".to_string()) && env.contains(&"B=2".to_string()),
        "{env:?}"
    );
    assert!(!env.iter().any(|e| e.starts_with("constraint:")), "{env:?}");

    // a node that is not in the swarm
    let nowhere = containers.name();
    let (status, message) =
        refusal(create(&api, &nowhere, &["constraint:node==mkest-no-such-node"]).await);
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "Unable to find a node that satisfies the following conditions [node==mkest-no-such-node]"
    );
    assert!(
        !docker(&["inspect", &nowhere]).status.success(),
        "not created"
    );
    assert_eq!(
        mke.placements(),
        vec![(by_name, Some(hostname.clone())), (by_id, Some(node_id))]
    );

    // administrators may not use managers: the real MKE refusal
    assert_eq!(role, "manager", "a single-node swarm's node is a manager");
    let strict = MkeStandIn::start(MkeOptions {
        admins_on_managers: false,
        ..Default::default()
    });
    let api = bollard_through(&strict).await;
    let on_manager = containers.name();
    let (status, message) = refusal(create(&api, &on_manager, &[&constraint]).await);
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "could not find any nodes on which the container could be created"
    );
    assert!(
        !docker(&["inspect", &on_manager]).status.success(),
        "not created"
    );
    assert_eq!(strict.placements(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Multi-node mode, against the three engines of the harness (common/nodes.rs): skipped without
// it, failed under CI. Containers, volumes and networks are named `mkest-*`; the harness's guard
// removes them from every node.

use crate::common::nodes::{Node, Nodes};

fn mkest(what: &str) -> String {
    format!("mkest-{what}-{}", dtr_core::options::ReplicaId::random())
}

/// The stand-in in front of the harness's three engines.
fn mke_for(nodes: &Nodes, opts: MkeOptions) -> MkeStandIn {
    MkeStandIn::start(MkeOptions {
        nodes: nodes.mke_engines(),
        ..opts
    })
}

/// Whether the node's engine has a container of that name.
fn has_container(node: &Node, name: &str) -> bool {
    node.docker(&["inspect", "--type", "container", name])
        .status
        .success()
}

/// The one node of the harness that has the container.
fn holder<'a>(nodes: &'a Nodes, name: &str) -> Vec<&'a str> {
    nodes
        .iter()
        .filter(|n| has_container(n, name))
        .map(|n| n.name.as_str())
        .collect()
}

/// `method path` through the stand-in with a session token and an optional JSON body:
/// (status, body as JSON, or as a JSON string when it is not JSON).
async fn call(
    mke: &MkeStandIn,
    bearer: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = https_client(mke)
        .request(method.parse().unwrap(), format!("{}{path}", mke.url()))
        .header("authorization", bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .expect("a request through the stand-in");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The node with the fewest containers (ties: the first): where "spread" puts the next one.
fn emptiest(nodes: &Nodes) -> String {
    let mut counts: Vec<(usize, String)> = nodes
        .iter()
        .map(|n| {
            (
                crate::common::lines(&n.docker_ok(&["ps", "-aq"])).len(),
                n.name.clone(),
            )
        })
        .collect();
    counts.sort();
    counts[0].1.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_a_create_goes_to_the_node_its_constraint_names_or_the_emptiest() {
    let Some(nodes) = Nodes::get() else { return };
    let mke = mke_for(&nodes, MkeOptions::default());
    let api = bollard_through(&mke).await;

    // by hostname, on each of the three nodes; the constraint entry never reaches the engine
    let mut expected = Vec::new();
    for node in nodes.iter() {
        let name = mkest(&node.name);
        let constraint = format!("constraint:node=={}", node.name);
        create(&api, &name, &["A=1", &constraint])
            .await
            .unwrap_or_else(|e| panic!("placed on {}: {e}", node.name));
        assert_eq!(holder(&nodes, &name), [node.name.as_str()], "{name}");
        let env = node.docker_ok(&["inspect", "-f", "{{json .Config.Env}}", &name]);
        assert!(
            env.contains("\"A=1\"") && !env.contains("constraint:"),
            "{env}"
        );
        expected.push((name, node.name.clone()));
    }
    // by swarm node id
    let node2 = nodes.node("node2");
    let node2_id = node2.docker_ok(&["info", "-f", "{{.Swarm.NodeID}}"]);
    let by_id = mkest("by-id");
    create(&api, &by_id, &[&format!("constraint:node=={node2_id}")])
        .await
        .expect("placed by node id");
    assert_eq!(holder(&nodes, &by_id), ["node2"]);
    expected.push((by_id.clone(), "node2".into()));

    // without a constraint: the node holding the fewest containers, twice
    for _ in 0..2 {
        let wanted = emptiest(&nodes);
        let name = mkest("spread");
        create(&api, &name, &[])
            .await
            .expect("placed by the stand-in");
        assert_eq!(holder(&nodes, &name), [wanted.as_str()], "{name}");
        expected.push((name, wanted));
    }

    // no such node: classic Swarm's refusal, nothing made anywhere
    let nowhere = mkest("nowhere");
    let (status, message) =
        refusal(create(&api, &nowhere, &["constraint:node==mkest-no-such-node"]).await);
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "Unable to find a node that satisfies the following conditions [node==mkest-no-such-node]"
    );
    assert_eq!(holder(&nodes, &nowhere), Vec::<&str>::new());

    assert_eq!(mke.created_on(), expected);
    let constrained: Vec<Option<String>> = mke.placements().into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        constrained,
        [
            Some("node1".into()),
            Some("node2".into()),
            Some("node3".into()),
            Some(node2_id),
            None,
            None
        ]
    );

    // administrators kept off managers: every node of the harness is one
    let strict = mke_for(
        &nodes,
        MkeOptions {
            admins_on_managers: false,
            ..Default::default()
        },
    );
    let api = bollard_through(&strict).await;
    for env in [vec!["constraint:node==node3"], vec![]] {
        let name = mkest("strict");
        let (status, message) = refusal(create(&api, &name, &env).await);
        assert_eq!(
            (status, message.as_str()),
            (400, super::common::mke::NO_NODE_MESSAGE),
            "{env:?}"
        );
        assert_eq!(holder(&nodes, &name), Vec::<&str>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_exec_logs_archives_rename_and_remove_go_to_the_containers_node() {
    let Some(nodes) = Nodes::get() else { return };
    let node3 = nodes.node("node3");
    let mke = mke_for(&nodes, MkeOptions::default());
    let api = bollard_through(&mke).await;
    let name = mkest("on-node3");
    create(&api, &name, &["constraint:node==node3"])
        .await
        .expect("create");
    // a container of the same name on node1, made behind the stand-in's back: requests by
    // name must still reach the one the stand-in placed
    let node1 = nodes.node("node1");
    node1.docker_ok(&["create", "--name", &name, IMAGE, "true"]);
    let before = mke.requests_per_node();

    api.start_container(&name, None).await.expect("start");
    let mut logs = api.logs(
        &name,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            ..Default::default()
        }),
    );
    let first = tokio::time::timeout(Duration::from_secs(10), logs.next())
        .await
        .expect("a log line")
        .expect("a log line")
        .expect("log output");
    assert_eq!(first.to_string(), "started\n");
    drop(logs);

    // an attached exec: created on node3, started there through the remembered exec id
    let exec = api
        .create_exec(
            &name,
            CreateExecOptions {
                cmd: Some(vec!["sh", "-c", "echo exec-out; exit 4"]),
                attach_stdout: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("exec create");
    let StartExecResults::Attached { mut output, .. } =
        api.start_exec(&exec.id, None).await.expect("exec start")
    else {
        panic!("not attached")
    };
    let mut out = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), output.next())
        .await
        .expect("exec output ends")
    {
        out.push_str(&chunk.unwrap().to_string());
    }
    assert_eq!(out, "exec-out\n");
    assert_eq!(api.inspect_exec(&exec.id).await.unwrap().exit_code, Some(4));

    // an archive up, then down, through the stand-in; the file is in node3's container
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let payload = b"placed on node3\n";
    header.set_size(payload.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "mkest.txt", &payload[..])
        .unwrap();
    api.upload_to_container(
        &name,
        Some(UploadToContainerOptions {
            path: "/tmp".into(),
            ..Default::default()
        }),
        bollard::body_full(tar.into_inner().unwrap().into()),
    )
    .await
    .expect("PUT archive");
    assert_eq!(
        node3.docker_ok(&["exec", &name, "cat", "/tmp/mkest.txt"]),
        "placed on node3"
    );
    let downloaded: Vec<u8> = api
        .download_from_container(
            &name,
            Some(bollard::query_parameters::DownloadFromContainerOptions {
                path: "/tmp/mkest.txt".into(),
            }),
        )
        .map(|chunk| chunk.expect("archive bytes").to_vec())
        .concat()
        .await;
    let mut archive = tar::Archive::new(&downloaded[..]);
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
    assert_eq!(content, "placed on node3\n");

    // every one of those went to node3 only; node1's namesake was never touched
    assert_eq!(
        node1.docker_ok(&["inspect", "-f", "{{.State.Status}}", &name]),
        "created"
    );
    let after = mke.requests_per_node();
    for other in ["node1", "node2"] {
        assert_eq!(after.get(other), before.get(other), "{other}: {after:?}");
    }
    let on_node3 =
        after.get("node3").copied().unwrap_or(0) - before.get("node3").copied().unwrap_or(0);
    assert!(
        on_node3 >= 7,
        "{on_node3} requests reached node3: {after:?}"
    );

    // renamed, it is found by its new name; removed, it is gone from node3 and unknown
    let renamed = mkest("renamed");
    api.rename_container(
        &name,
        bollard::query_parameters::RenameContainerOptions {
            name: renamed.clone(),
        },
    )
    .await
    .expect("rename");
    let details = api
        .inspect_container(&renamed, None)
        .await
        .expect("inspect by the new name");
    assert_eq!(
        details.name.as_deref(),
        Some(format!("/{renamed}").as_str())
    );
    api.remove_container(
        &renamed,
        Some(bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        }),
    )
    .await
    .expect("remove");
    assert!(!has_container(node3, &renamed));
    let gone = api.inspect_container(&renamed, None).await.map(|_| ());
    let (status, message) = refusal(gone);
    assert_eq!(
        (status, message),
        (404, format!("No such container: {renamed}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_listings_are_the_nodes_answers_together_volumes_and_networks_on_each() {
    let Some(nodes) = Nodes::get() else { return };
    let mke = mke_for(&nodes, MkeOptions::default());
    let api = bollard_through(&mke).await;
    let bearer = format!("Bearer {}", token(&mke).await);
    let run = mkest("run");

    // one labelled container per node, listed together with each engine's own entry
    let mut ids = Vec::new();
    for node in nodes.iter() {
        let name = mkest(&node.name);
        let body = ContainerCreateBody {
            image: Some(IMAGE.into()),
            cmd: Some(vec!["true".into()]),
            env: Some(vec![format!("constraint:node=={}", node.name)]),
            labels: Some([("mkest.run".to_string(), run.clone())].into()),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        api.create_container(Some(options), body)
            .await
            .expect("create");
        ids.push(node.docker_ok(&["inspect", "-f", "{{.Id}}", &name]));
    }
    let filters = url::form_urlencoded::byte_serialize(
        json!({"label": [format!("mkest.run={run}")]})
            .to_string()
            .as_bytes(),
    )
    .collect::<String>();
    let (status, listed) = call(
        &mke,
        &bearer,
        "GET",
        &format!("/v1.41/containers/json?all=1&filters={filters}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let mut listed_ids: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    listed_ids.sort();
    ids.sort();
    assert_eq!(listed_ids, ids);
    // the engine's own entry, nothing added: the name as the engine gives it
    assert!(
        listed.as_array().unwrap().iter().all(|c| c["Names"][0]
            .as_str()
            .is_some_and(|n| n.starts_with("/mkest-node"))),
        "{listed}"
    );

    // a named volume is made on every node, listed once, removed from every node
    let volume = mkest("vol");
    let (status, made) = call(
        &mke,
        &bearer,
        "POST",
        "/v1.41/volumes/create",
        Some(json!({"Name": volume})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["Name"], volume.as_str());
    for node in nodes.iter() {
        assert!(
            node.docker(&["volume", "inspect", &volume])
                .status
                .success(),
            "{volume} on {}",
            node.name
        );
    }
    let name_filter = url::form_urlencoded::byte_serialize(
        json!({"name": [volume.clone()]}).to_string().as_bytes(),
    )
    .collect::<String>();
    let (status, volumes) = call(
        &mke,
        &bearer,
        "GET",
        &format!("/v1.41/volumes?filters={name_filter}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{volumes}");
    assert_eq!(
        volumes["Volumes"].as_array().map(Vec::len),
        Some(1),
        "{volumes}"
    );
    assert_eq!(
        call(
            &mke,
            &bearer,
            "GET",
            &format!("/v1.41/volumes/{volume}"),
            None
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &mke,
        &bearer,
        "DELETE",
        &format!("/v1.41/volumes/{volume}"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    for node in nodes.iter() {
        assert!(
            !node
                .docker(&["volume", "inspect", &volume])
                .status
                .success(),
            "{volume} left on {}",
            node.name
        );
    }
    assert_eq!(
        call(
            &mke,
            &bearer,
            "DELETE",
            &format!("/v1.41/volumes/{volume}"),
            None
        )
        .await
        .0,
        404
    );

    // a bridge network on every node, an overlay once; listed as such; removed
    let bridge = mkest("br");
    let overlay = mkest("ol");
    let (status, body) = call(
        &mke,
        &bearer,
        "POST",
        "/v1.41/networks/create",
        Some(json!({"Name": bridge, "Driver": "bridge"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &mke,
        &bearer,
        "POST",
        "/v1.41/networks/create",
        Some(json!({"Name": overlay, "Driver": "overlay", "Attachable": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for node in nodes.iter() {
        let scopes = node.docker_ok(&[
            "network",
            "ls",
            "--filter",
            "name=mkest-",
            "--format",
            "{{.Name}} {{.Scope}}",
        ]);
        assert!(
            scopes.contains(&format!("{bridge} local")),
            "{}: {scopes}",
            node.name
        );
    }
    let manager = nodes.manager();
    assert_eq!(
        manager.docker_ok(&["network", "inspect", "-f", "{{.Scope}}", &overlay]),
        "swarm"
    );
    // by exact names: the engine's name filter matches swarm networks by their whole name
    let name_filter = url::form_urlencoded::byte_serialize(
        json!({"name": [bridge.clone(), overlay.clone()]})
            .to_string()
            .as_bytes(),
    )
    .collect::<String>();
    let (status, networks) = call(
        &mke,
        &bearer,
        "GET",
        &format!("/v1.41/networks?filters={name_filter}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{networks}");
    let names: Vec<&str> = networks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["Name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == bridge).count(),
        3,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == overlay).count(),
        1,
        "{names:?}"
    );

    for network in [&overlay, &bridge] {
        let (status, body) = call(
            &mke,
            &bearer,
            "DELETE",
            &format!("/v1.41/networks/{network}"),
            None,
        )
        .await;
        assert_eq!(status, 204, "{network}: {body}");
    }
    for node in nodes.iter() {
        assert_eq!(
            node.docker_ok(&["network", "ls", "-q", "--filter", "name=mkest-"]),
            "",
            "networks left on {}",
            node.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_a_killed_node_fails_only_the_requests_routed_to_it() {
    let Some(nodes) = Nodes::get() else { return };
    let (node1, node3) = (nodes.node("node1"), nodes.node("node3"));
    let mke = mke_for(&nodes, MkeOptions::default());
    let api = bollard_through(&mke).await;
    let bearer = format!("Bearer {}", token(&mke).await);
    let on_node1 = mkest("on-node1");
    let on_node3 = mkest("on-node3");
    create(&api, &on_node1, &["constraint:node==node1"])
        .await
        .expect("on node1");
    create(&api, &on_node3, &["constraint:node==node3"])
        .await
        .expect("on node3");

    // node1, the first manager the stand-in asks, goes; when it held the swarm's leadership
    // no manager answers until the other two have elected a leader (about 10 s), as with MKE
    nodes.kill(node1);
    crate::common::wait_until(
        "node2 or node3 to answer as a manager with a leader",
        Duration::from_secs(60),
        || {
            nodes
                .iter()
                .any(|n| n.name != "node1" && n.swarm_members().is_ok())
        },
    );

    let (status, body) = call(
        &mke,
        &bearer,
        "GET",
        &format!("/v1.41/containers/{on_node1}/json"),
        None,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("node node1"), "{message}");
    let (status, body) = call(
        &mke,
        &bearer,
        "POST",
        &format!("/v1.41/containers/create?name={}", mkest("to-node1")),
        Some(json!({"Image": IMAGE, "Env": ["constraint:node==node1"]})),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("node node1"),
        "{body}"
    );

    // what is on the other nodes, and what any manager answers, still works
    let (status, body) = call(
        &mke,
        &bearer,
        "GET",
        &format!("/v1.41/containers/{on_node3}/json"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for path in ["/v1.41/info", "/v1.41/version", "/v1.41/nodes"] {
        let (status, body) = call(&mke, &bearer, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, info) = call(&mke, &bearer, "GET", "/v1.41/info", None).await;
    assert_ne!(
        info["Name"], "node1",
        "answered by another manager: {}",
        info["Name"]
    );
    let (status, listed) = call(&mke, &bearer, "GET", "/v1.41/containers/json?all=1", None).await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["Names"][0].as_str())
        .collect();
    assert!(
        names.contains(&format!("/{on_node3}").as_str()),
        "{names:?}"
    );
    assert!(
        !names.contains(&format!("/{on_node1}").as_str()),
        "{names:?}"
    );
    let elsewhere = mkest("elsewhere");
    create(&api, &elsewhere, &[])
        .await
        .expect("placed on a node that answers");
    let placed = holder(&nodes, &elsewhere);
    assert!(placed == ["node2"] || placed == ["node3"], "{placed:?}");
    let volume = mkest("vol");
    let (status, body) = call(
        &mke,
        &bearer,
        "POST",
        "/v1.41/volumes/create",
        Some(json!({"Name": volume})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(node3
        .docker(&["volume", "inspect", &volume])
        .status
        .success());
}

#[test]
fn across_nodes_the_bootstrapper_installs_on_the_node_it_names_and_destroys_through_it() {
    let Some(nodes) = Nodes::get() else { return };
    let node2 = nodes.node("node2");
    let mke = mke_for(&nodes, MkeOptions::default());
    let id = dtr_core::options::ReplicaId::random().to_string();
    let https = crate::common::free_port();
    let mut http = crate::common::free_port();
    while http == https {
        http = crate::common::free_port();
    }
    let (https_s, http_s, url, ca) = (https.to_string(), http.to_string(), mke.url(), mke.ca_pem());
    // the bootstrapper reaches the nodes only through the stand-in
    let via_mke = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--ucp-url", &url, "--ucp-username", mke.username()]);
        args.extend(["--ucp-ca", &ca]);
        crate::common::dtr(
            &args,
            &[
                ("UCP_PASSWORD", mke.password()),
                ("DTR_ADMIN_PASSWORD", crate::common::admin_password()),
                ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ],
        )
    };
    let out = via_mke(&[
        "install",
        "--ucp-node",
        "node2",
        "--replica-id",
        &id,
        "--replica-https-port",
        &https_s,
        "--replica-http-port",
        &http_s,
    ]);
    assert!(
        out.status.success(),
        "install through the stand-in:\n{}",
        crate::common::text(&out)
    );

    // every container on node2, as the stand-in placed them, none elsewhere
    let label = format!("label=com.docker.dtr.replica={id}");
    assert_eq!(
        node2.containers(&label).len(),
        8,
        "{:?}",
        node2.containers(&label)
    );
    for other in nodes.iter().filter(|n| n.name != "node2") {
        assert_eq!(
            other.containers(&label),
            Vec::<String>::new(),
            "{}",
            other.name
        );
    }
    for (name, node) in mke.created_on() {
        assert_eq!(node, "node2", "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster_ca = dir.path().join("ca.pem");
    std::fs::write(&cluster_ca, node2.external_ca(&id)).unwrap();
    let ping = format!("https://{}:{https}/_ping", node2.addr);
    let resp = crate::common::http::Request::get(&ping)
        .ca(&cluster_ca)
        .send();
    assert_eq!(resp.status, 200, "{ping}: {resp}");

    let out = via_mke(&["destroy", "--replica-id", &id]);
    assert!(
        out.status.success(),
        "destroy through the stand-in:\n{}",
        crate::common::text(&out)
    );
    assert_eq!(nodes.leftovers(), Vec::<String>::new());
}
