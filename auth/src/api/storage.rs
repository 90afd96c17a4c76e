//! Storage limits and usage in the API (usage deduplicated per scope): Berth's
//! `registry_storage_limit` on projects and top-level groups (set by instance admins), and
//! GitLab's usage fields, `statistics.container_registry_size` on projects and
//! `root_storage_statistics.container_registry_size` on top-level groups, computed by
//! [`berth_db::usage`] (deduplicated, one query each).

use berth_core::access::Role;
use berth_db::entity::{namespaces, projects};
use serde_json::{Value, json};

use super::caller::Caller;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::state::AppState;

/// The write key on `PUT /projects/:id` and `PUT /groups/:id`.
const KEY: &str = "registry_storage_limit";

/// `registry_storage_limit` in a `PUT` body: absent (`None`), cleared with `null` or `""`
/// (`Some(None)`), or a number of bytes. Setting it is for instance admins only.
pub fn limit_change(caller: &Caller, p: &Params) -> ApiResult<Option<Option<i64>>> {
    let Some(raw) = p.0.get(KEY) else {
        return Ok(None);
    };
    caller.require_admin()?;
    if raw.is_null() || raw.as_str() == Some("") {
        return Ok(Some(None));
    }
    match p.int(KEY)? {
        Some(bytes) if bytes >= 0 => Ok(Some(Some(bytes))),
        _ => Err(ApiError::BadRequest(format!(
            "{KEY} must be a number of bytes (0 or more) or null"
        ))),
    }
}

/// GitLab shows storage statistics to admins and to members who may see the registry
/// (Reporter+).
fn may_see(caller: Option<&Caller>, role: Option<Role>) -> bool {
    caller.is_some_and(Caller::is_admin) || role >= Some(Role::Reporter)
}

/// Add `root_storage_statistics` to group JSON `v` when `g` is a top-level group and the
/// caller may see it.
pub async fn add_root_statistics(
    state: &AppState,
    caller: Option<&Caller>,
    role: Option<Role>,
    g: &namespaces::Model,
    v: &mut Value,
) -> ApiResult<()> {
    if g.parent_id.is_some() || !may_see(caller, role) {
        return Ok(());
    }
    let bytes = berth_db::usage::namespace_usage(&state.db.read, &g.full_path).await?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "root_storage_statistics".into(),
            json!({ "container_registry_size": bytes }),
        );
    }
    Ok(())
}

/// Add `statistics` to project JSON `v` when the caller may see it.
pub async fn add_project_statistics(
    state: &AppState,
    caller: Option<&Caller>,
    role: Option<Role>,
    p: &projects::Model,
    v: &mut Value,
) -> ApiResult<()> {
    if !may_see(caller, role) {
        return Ok(());
    }
    let bytes = berth_db::usage::project_usage(&state.db.read, &p.full_path).await?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "statistics".into(),
            json!({ "container_registry_size": bytes }),
        );
    }
    Ok(())
}
