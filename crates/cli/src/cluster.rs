//! The connection (kubectl's rules for kubeconfig, context and namespace) and the paginated reads every command
//! shares.

use crate::args::{Filter, Target};
use crate::error::{self, CliError, Request};
use crate::slim::{self, SlimExecution};
use crew_api::CrewExecution;
use kube::api::{ListParams, ObjectList};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};

/// Resource name of executions in error messages.
pub const EXECUTIONS: &str = "crewexecutions.crew.dev";

/// A client and the namespace scope the command works in.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// `None` with `-A`.
    pub namespace: Option<String>,
    /// Page size of every list (`--chunk-size`, 500 by default: `list -A` over 10 000 executions is 20 requests,
    /// never one giant response).
    pub page: u32,
}

impl Cluster {
    /// Connects as kubectl would: `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster
    /// ServiceAccount; `--context` picks the context; `-n` wins over the context's namespace.
    pub async fn connect(target: &Target) -> Result<Cluster, CliError> {
        Cluster::of(config_of(target).await?, target)
    }

    /// The cluster `config` reaches, scoped as `target` says.
    pub fn of(config: Config, target: &Target) -> Result<Cluster, CliError> {
        error::set_server(&config.cluster_url.to_string());
        let namespace = if target.all_namespaces {
            None
        } else {
            Some(
                target
                    .namespace
                    .clone()
                    .unwrap_or_else(|| config.default_namespace.clone()),
            )
        };
        let client = Client::try_from(config)
            .map_err(|e| CliError::Config(format!("cannot build a client: {e}")))?;
        Ok(Cluster {
            client,
            namespace,
            page: target.chunk_size,
        })
    }

    /// The namespace for commands about one named object (`-A` makes no sense there).
    pub fn one_namespace(&self) -> Result<&str, CliError> {
        self.namespace.as_deref().ok_or_else(|| {
            CliError::Usage("a name needs one namespace: use -n instead of -A".into())
        })
    }

    /// The API of `K` in the command's scope.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The API of `K` in namespace `ns`.
    pub fn api_in<K>(&self, ns: &str) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// One execution by name in the command's namespace.
    pub async fn execution(&self, name: &str) -> Result<CrewExecution, CliError> {
        let ns = self.one_namespace()?;
        self.api_in::<CrewExecution>(ns)
            .get(name)
            .await
            .map_err(|e| error::api(&Request::new("get", EXECUTIONS, Some(ns)).named(name), e))
    }

    /// Every execution the filter selects, read a page at a time into the slim form (see [`crate::slim`]):
    /// enough for tables, statistics and bulk decisions.
    pub async fn executions(&self, filter: &Filter) -> Result<Vec<CrewExecution>, CliError> {
        let (params, phases) = list_params(filter, self.page)?;
        let items = list_all(&self.api::<SlimExecution>(), params, self.request("list")).await?;
        Ok(items
            .into_iter()
            .map(slim::into_execution)
            .filter(|cx| phases.len() < 2 || phases.contains(&phase_name(cx)))
            .collect())
    }

    /// Every execution the filter selects, whole (for `-o json|yaml` and `rerun`).
    pub async fn executions_whole(&self, filter: &Filter) -> Result<Vec<CrewExecution>, CliError> {
        let (params, phases) = list_params(filter, self.page)?;
        let mut items =
            list_all(&self.api::<CrewExecution>(), params, self.request("list")).await?;
        items.retain(|cx| phases.len() < 2 || phases.contains(&phase_name(cx)));
        Ok(items)
    }

    /// A request in the command's scope, for error messages.
    pub fn request(&self, verb: &'static str) -> Request {
        Request::new(verb, EXECUTIONS, self.namespace.as_deref())
    }
}

/// The client configuration kubectl would use: `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`, else the
/// in-cluster ServiceAccount; `--context` picks the context.
pub async fn config_of(target: &Target) -> Result<Config, CliError> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                CliError::Config(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None if target.context.is_some() => Config::from_kubeconfig(&options).await,
        None => match Config::from_kubeconfig(&options).await {
            Ok(config) => Ok(config),
            Err(kubeconfig_error) => Config::incluster().map_err(|_| kubeconfig_error),
        },
    }
    .map_err(|e| CliError::Config(format!("no usable kubeconfig: {e}")))
}

/// The list parameters of `filter`: `--queue` and a single `--phase` are field selectors (the CRD declares both
/// selectable), so the server filters; several phases are returned to filter here.
pub fn list_params(
    filter: &Filter,
    page: u32,
) -> Result<(ListParams, Vec<&'static str>), CliError> {
    let mut params = ListParams::default().limit(page);
    if let Some(selector) = &filter.selector {
        params = params.labels(selector);
    }
    let mut fields = Vec::new();
    if let Some(queue) = &filter.queue {
        fields.push(format!("spec.queue={queue}"));
    }
    let phases = normalized_phases(&filter.phase)?;
    if let [phase] = phases.as_slice() {
        fields.push(format!("status.phase={phase}"));
    }
    if !fields.is_empty() {
        params = params.fields(&fields.join(","));
    }
    Ok((params, phases))
}

/// Every page of a list.
pub async fn list_all<K>(
    api: &Api<K>,
    mut params: ListParams,
    request: Request,
) -> Result<Vec<K>, CliError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    loop {
        let page: ObjectList<K> = api
            .list(&params)
            .await
            .map_err(|e| error::api(&request, e))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

/// The phase as `.status.phase` writes it; `""` before the operator's first write.
pub fn phase_name(cx: &CrewExecution) -> &'static str {
    cx.status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| p.as_str())
        .unwrap_or("")
}

/// `--phase` values checked against the phases that exist, spelled as the API spells them (any case accepted).
pub fn normalized_phases(phases: &[String]) -> Result<Vec<&'static str>, CliError> {
    phases
        .iter()
        .map(|given| {
            crew_api::Phase::ALL
                .iter()
                .map(|p| p.as_str())
                .find(|name| name.eq_ignore_ascii_case(given))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown phase `{given}`: one of Pending, Queued, Running, Paused, Succeeded, Failed, Cancelled"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_checked_and_spelled_as_the_api() {
        let given = vec!["running".to_string(), "Queued".to_string()];
        assert_eq!(normalized_phases(&given).unwrap(), ["Running", "Queued"]);
        assert!(normalized_phases(&["Done".to_string()]).is_err());
        // An empty phase is no phase: refused, never dropped (dropping it left no filter at all).
        assert!(normalized_phases(&[String::new()]).is_err());
    }
}
