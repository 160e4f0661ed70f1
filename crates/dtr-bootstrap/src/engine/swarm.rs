//! The swarm's own objects the bootstrapper uses: secrets (the cluster's seed) and one-task
//! services — a task on a chosen node that the swarm hands a secret, which is how a replica
//! joins from the engine of its own node (`ops::seed`). They need a manager's engine, or MKE.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::models::{
    NetworkAttachmentConfig, SecretSpec, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
    TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListSecretsOptions, ListTasksOptions, LogsOptions};
use data_encoding::BASE64;

use super::{filters, is_not_found, mounts, Engine};
use crate::error::{Error, Result};
use crate::plan::{MountSpec, OneShotOutput};

/// A swarm secret, without its data (the engine never returns it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A task to run once on `node`, as a service of one replica that is never restarted.
#[derive(Clone, Debug)]
pub struct TaskRun {
    /// The service's name (a leftover of the same name is removed first).
    pub name: String,
    pub image: String,
    /// The program and its arguments (the image's entrypoint is replaced).
    pub command: Vec<String>,
    /// The swarm node's hostname.
    pub node: String,
    /// `(secret id, secret name)`, mounted at `/run/secrets/<target>` for root only.
    pub secret: Option<(String, String, String)>,
    pub mounts: Vec<MountSpec>,
    pub network: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl Engine {
    pub async fn create_secret(
        &self,
        name: &str,
        data: &[u8],
        labels: BTreeMap<String, String>,
    ) -> Result<String> {
        self.note(|| format!("create secret {name} ({} bytes)", data.len()));
        let spec = SecretSpec {
            name: Some(name.to_string()),
            data: Some(BASE64.encode(data)),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        let r = self
            .docker
            .create_secret(spec)
            .await
            .map_err(|e| Error::docker("create secret", name, e))?;
        Ok(r.id)
    }

    /// The secrets with label `label` (`key` or `key=value`).
    pub async fn secrets_labelled(&self, label: &str) -> Result<Vec<SecretInfo>> {
        let list = self
            .docker
            .list_secrets(Some(ListSecretsOptions {
                filters: Some(filters(&[("label", label)])),
            }))
            .await
            .map_err(|e| Error::docker("list secrets", label, e))?;
        Ok(list
            .into_iter()
            .map(|s| {
                let spec = s.spec.unwrap_or_default();
                SecretInfo {
                    id: s.id.unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                }
            })
            .collect())
    }

    /// Removes a secret; one already gone counts as removed. A secret a service still uses is
    /// the engine's refusal.
    pub async fn remove_secret(&self, id: &str) -> Result<()> {
        self.note(|| format!("remove secret {id}"));
        match self.docker.delete_secret(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::docker("remove secret", id, e)),
        }
    }

    /// Runs `run` as a one-task service to its end and returns its exit code and output; the
    /// service is removed whatever happened. A task the swarm rejects (no such node, the image
    /// missing there) is an error naming the node and the swarm's reason.
    pub async fn run_task(&self, run: &TaskRun, timeout: Duration) -> Result<OneShotOutput> {
        let _ = self.remove_service(&run.name).await;
        self.note(|| {
            format!(
                "create service {} on node {}: image {}, command [{}]",
                run.name,
                run.node,
                run.image,
                run.command.join(" ")
            )
        });
        self.docker
            .create_service(service_spec(run), None)
            .await
            .map_err(|e| Error::docker("create service", &run.name, e))?;
        let result = self.wait_task(run, timeout).await;
        let removed = self.remove_service(&run.name).await;
        let out = result?;
        removed?;
        self.wait_task_containers_gone(&run.name).await;
        Ok(out)
    }

    /// The swarm removes a deleted service's task containers after the fact: waits (10 s at
    /// most) until none is left, so that what a command made is gone when it ends.
    async fn wait_task_containers_gone(&self, service: &str) {
        let label = format!("com.docker.swarm.service.name={service}");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            match self.containers_labelled(&[&label]).await {
                Ok(left) if !left.is_empty() => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                _ => return,
            }
        }
    }

    async fn wait_task(&self, run: &TaskRun, timeout: Duration) -> Result<OneShotOutput> {
        let started = Instant::now();
        let where_ = || format!("service {} on node {}", run.name, run.node);
        loop {
            let tasks = self
                .docker
                .list_tasks(Some(ListTasksOptions {
                    filters: Some(filters(&[("service", &run.name)])),
                }))
                .await
                .map_err(|e| Error::docker("list tasks of", &run.name, e))?;
            if let Some(status) = tasks.into_iter().find_map(|t| t.status) {
                match status.state {
                    Some(TaskState::COMPLETE) | Some(TaskState::FAILED) => {
                        // from the task's container when this engine reaches it (the node's own
                        // engine, MKE); the swarm's log stream can fail for a node that just
                        // joined it ("incomplete log stream")
                        let container = status
                            .container_status
                            .as_ref()
                            .and_then(|c| c.container_id.clone());
                        let (stdout, stderr) = match container {
                            Some(id) if matches!(self.state(&id).await, Ok(Some(_))) => {
                                self.output(&id).await
                            }
                            _ => self.service_output(&run.name).await,
                        };
                        let exit_code = status
                            .container_status
                            .and_then(|c| c.exit_code)
                            .unwrap_or(if status.state == Some(TaskState::COMPLETE) {
                                0
                            } else {
                                -1
                            });
                        return Ok(OneShotOutput {
                            exit_code,
                            stdout,
                            stderr: if stderr.is_empty() {
                                status.err.unwrap_or_default()
                            } else {
                                stderr
                            },
                        });
                    }
                    Some(TaskState::REJECTED) | Some(TaskState::ORPHANED) => {
                        return Err(Error::ClusterCommand {
                            command: run.command.join(" "),
                            container: where_(),
                            output: status
                                .err
                                .or(status.message)
                                .unwrap_or_else(|| "rejected by the swarm".into()),
                        })
                    }
                    _ => {}
                }
            }
            if started.elapsed() > timeout {
                return Err(Error::TimedOut {
                    waiting_for: format!("the task of {}", where_()),
                    waited: timeout,
                    hint: format!(
                        "check that node {} is ready (`docker node ls`) and has the image {}",
                        run.node, run.image
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The task's stdout and stderr, as the swarm collects them from its node.
    async fn service_output(&self, name: &str) -> (String, String) {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        super::split_output(self.docker.service_logs(name, Some(opts))).await
    }

    async fn remove_service(&self, name: &str) -> Result<()> {
        match self.docker.delete_service(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::docker("remove service", name, e)),
        }
    }
}

fn service_spec(run: &TaskRun) -> ServiceSpec {
    let secrets = run.secret.as_ref().map(|(id, name, target)| {
        vec![TaskSpecContainerSpecSecrets {
            secret_id: Some(id.clone()),
            secret_name: Some(name.clone()),
            file: Some(TaskSpecContainerSpecFile {
                name: Some(target.clone()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o400),
            }),
        }]
    });
    ServiceSpec {
        name: Some(run.name.clone()),
        labels: Some(run.labels.clone().into_iter().collect::<HashMap<_, _>>()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(run.image.clone()),
                command: Some(run.command.clone()),
                user: Some("0:0".into()),
                mounts: Some(mounts(&run.mounts)),
                secrets,
                labels: Some(run.labels.clone().into_iter().collect()),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.hostname=={}", run.node)]),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            networks: run.network.as_ref().map(|n| {
                vec![NetworkAttachmentConfig {
                    target: Some(n.clone()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_once_on_its_node_with_its_secret_for_root_only() {
        let run = TaskRun {
            name: "dtr-join-agent-0123456789ab".into(),
            image: "registry/dtr:1".into(),
            command: vec!["dtr".into(), "join-agent".into(), "seed".into()],
            node: "node2".into(),
            secret: Some(("sid".into(), "dtr-seed-a-b".into(), "dtr-seed".into())),
            mounts: vec![MountSpec {
                source: "dtr-ca-0123456789ab".into(),
                target: "/ca".into(),
                read_only: false,
                bind: false,
            }],
            network: Some("dtr-ol".into()),
            labels: BTreeMap::new(),
        };
        let spec = service_spec(&run);
        let task = spec.task_template.unwrap();
        assert_eq!(
            task.placement.unwrap().constraints.unwrap(),
            vec!["node.hostname==node2"]
        );
        assert_eq!(
            task.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let c = task.container_spec.unwrap();
        let file = c.secrets.unwrap()[0].file.clone().unwrap();
        assert_eq!(
            (file.name.as_deref(), file.mode, file.uid.as_deref()),
            (Some("dtr-seed"), Some(0o400), Some("0"))
        );
        assert_eq!(task.networks.unwrap()[0].target.as_deref(), Some("dtr-ol"));
    }
}
